//! The process's own figures, named as Prometheus client libraries export them
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...): what ZooKeeper's
//! `exportJvmInfo` adds beside its JVM figures, which corral, without a JVM, cannot have.
//! Read from /proc at scrape; a figure the OS will not give is left out.

/// One reading of the process's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
}

impl Process {
    /// Reads /proc/self.
    pub fn read() -> Process {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s));
        // SAFETY: sysconf has no memory effects; it reads a system constant.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let mut p = Process {
            open_fds: crate::admin::probe::open_fd_count(),
            max_fds: crate::admin::probe::max_fd_count(),
            ..Process::default()
        };
        if let Some(s) = stat {
            if ticks > 0 {
                let ticks = ticks as f64;
                p.cpu_seconds = Some((s.utime + s.stime) as f64 / ticks);
                p.start_time_seconds = boot_time.map(|b| b as f64 + s.start_ticks as f64 / ticks);
            }
            if page > 0 {
                p.resident_memory_bytes = Some(s.rss_pages.saturating_mul(page as u64));
            }
            p.virtual_memory_bytes = Some(s.vsize);
            p.threads = Some(s.threads);
        }
        p
    }
}

/// CPU time of the calling thread, in seconds.
pub fn thread_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// The fields of /proc/<pid>/stat this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    pub start_ticks: u64,
    pub vsize: u64,
    pub rss_pages: u64,
}

/// Parses /proc/<pid>/stat (proc(5)). The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: n(14)?,
        stime: n(15)?,
        threads: n(20)?,
        start_ticks: n(22)?,
        vsize: n(23)?,
        rss_pages: n(24)?,
    })
}

/// The `btime` line of /proc/stat: boot time in seconds since the epoch.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_an_awkward_name() {
        let line = "4242 (co rr) al) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    150 25 0 0 20 0 7 0 123456 987654321 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 25,
                threads: 7,
                start_ticks: 123456,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (corral) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn boot_time() {
        let text = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(parse_boot_time(text), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = Process::read();
        assert!(p.cpu_seconds.is_some());
        assert!(p.resident_memory_bytes.unwrap() > 0);
        assert!(p.threads.unwrap() >= 1);
        assert!(p.open_fds.unwrap() >= 1);
    }
}
