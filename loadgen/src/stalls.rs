//! `loadgen stalls`: how long this machine takes each CPU away from a thread that never sleeps.
//!
//! One thread per CPU, pinned, reads the monotonic clock in a tight loop; every gap between two
//! reads longer than `--min-us` is time the thread did not run: an interrupt, a kernel thread, or
//! (on a VM) the host running something else on that vCPU. No server, no network, no syscalls in
//! the loop: whatever shows up here is a floor under every latency measured on the machine, so
//! compare.sh records it beside the results (docs/BENCHMARKS.md, "Machine stalls").

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

/// Spins for `dur` counting gaps of at least `min` between clock reads. Pure but for the clock.
pub fn spin(cpu: usize, dur: Duration, min: Duration) -> CpuStalls {
    let start = Instant::now();
    let mut prev = start;
    let mut over = [0u64; OVER_US.len()];
    let (mut max, mut stolen) = (Duration::ZERO, Duration::ZERO);
    loop {
        let now = Instant::now();
        let gap = now - prev;
        prev = now;
        if gap >= min {
            stolen += gap;
            max = max.max(gap);
            for (n, &t) in over.iter_mut().zip(OVER_US.iter()) {
                if gap > Duration::from_micros(t) {
                    *n += 1;
                }
            }
        }
        if now - start >= dur {
            let secs = (now - start).as_secs_f64();
            return CpuStalls {
                cpu,
                seconds: secs,
                over,
                max_us: max.as_secs_f64() * 1e6,
                stolen: stolen.as_secs_f64() / secs,
            };
        }
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
    let threads: Vec<_> = a
        .cpus
        .iter()
        .map(|&cpu| {
            std::thread::Builder::new()
                .name(format!("stalls{cpu}"))
                .spawn(move || pin(cpu).map(|()| spin(cpu, dur, min)))
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
        table(&res, a.min_us)
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

/// Markdown table, one row per CPU.
pub fn table(res: &[CpuStalls], min_us: u64) -> String {
    let mut s = String::from("| CPU | seconds |");
    for t in OVER_US {
        s += &if t >= 1000 {
            format!(" gaps > {} ms |", t / 1000)
        } else {
            format!(" gaps > {t} us |")
        };
    }
    s += &format!(" longest gap (ms) | time lost (gaps >= {min_us} us) |\n|---|---|");
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
        let t = table(&[r.clone(), CpuStalls { cpu: 0, ..r }], 20);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("| CPU | seconds | gaps > 100 us | gaps > 1 ms |"));
        assert_eq!(lines[2], "| 1 | 10.0 | 50 | 4 | 1 | 0 | 4.32 | 0.123% |");
        // Every row has as many cells as the header.
        let cells = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{t}");
    }
}
