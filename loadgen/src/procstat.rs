//! CPU time and RSS of a process (or one thread) from /proc, and the loadgen's own CPU time.

/// What to sample: a whole process, or one thread of it (the in-process echo server).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Process(i32),
    Thread(i32, i32),
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

impl Target {
    /// CPU time (user + system) in nanoseconds. A process's comes from /proc/PID/stat (clock
    /// ticks, threads that exited included); a thread's from its schedstat (nanoseconds).
    pub fn cpu_ns(&self) -> Option<u64> {
        match *self {
            Target::Process(pid) => {
                let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // Fields after the command name (which may hold spaces) start after ')'.
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
                let utime: u64 = f.get(11)?.parse().ok()?;
                let stime: u64 = f.get(12)?.parse().ok()?;
                Some((utime + stime) * 1_000_000_000 / clk_tck())
            }
            Target::Thread(pid, tid) => {
                let s =
                    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
                s.split_whitespace().next()?.parse().ok()
            }
        }
    }

    /// The process's PID.
    pub fn pid(&self) -> i32 {
        match *self {
            Target::Process(p) | Target::Thread(p, _) => p,
        }
    }

    /// Resident set size in KiB (the process's, also for a thread target).
    pub fn rss_kb(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// This process's CPU time (all threads, user + system) in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises RLIMIT_MEMLOCK so that many glommio executors (each locks memory for io_uring) fit.
pub fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscalls with valid pointers.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) == 0 {
            return;
        }
        // Without CAP_SYS_RESOURCE: as high as the hard limit allows.
        let mut cur: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) == 0 {
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
        }
    }
}

/// CPUs in this process's affinity mask.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// All CPUs online.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        1
    }
}
