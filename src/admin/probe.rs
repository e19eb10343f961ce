//! Readers of /proc and the environment for the numbers `mntr`, `envi` and `dirs` need: the
//! only I/O of the admin module. Each returns `None` (or a default) where the OS will not
//! tell, never an error.

use std::path::Path;

use super::data::EnvInfo;

/// Open descriptors of this process: entries of /proc/self/fd, less the one the
/// listing itself holds open (as the JDK counts).
pub fn open_fd_count() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(entries.saturating_sub(1))
}

/// The soft `RLIMIT_NOFILE`, from /proc/self/limits; `None` if unlimited or unknown.
pub fn max_fd_count() -> Option<u64> {
    parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit on the `Max open files` line of `/proc/<pid>/limits`.
pub fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A `<key>: <n> kB` value of /proc/meminfo or /proc/self/status.
pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Total length of the regular files under `path`, recursively (ZooKeeper's
/// `getDirSize`). Symlinked directories are not followed, so loops cannot recurse.
pub fn dir_size_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| dir_size_bytes(&e.path()))
        .sum()
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

/// The `envi` facts of this process and host.
pub fn env_info() -> EnvInfo {
    let mut env = EnvInfo::default();
    let or_na = |v: Option<String>, slot: &mut String| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            *slot = v;
        }
    };
    or_na(
        read_trimmed("/proc/sys/kernel/hostname"),
        &mut env.host_name,
    );
    or_na(
        read_trimmed("/proc/sys/kernel/osrelease"),
        &mut env.os_version,
    );
    // Java's names: "Linux", "amd64".
    env.os_name = match std::env::consts::OS {
        "linux" => "Linux".to_string(),
        "macos" => "Mac OS X".to_string(),
        other => other.to_string(),
    };
    env.os_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64".to_string(),
        "x86" => "x86".to_string(),
        other => other.to_string(),
    };
    or_na(
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok(),
        &mut env.user_name,
    );
    or_na(std::env::var("HOME").ok(), &mut env.user_home);
    or_na(
        std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string()),
        &mut env.user_dir,
    );
    if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
        env.memory_free_mb = parse_kb_field(&meminfo, "MemAvailable").map(|kb| kb / 1024);
        env.memory_max_mb = parse_kb_field(&meminfo, "MemTotal").map(|kb| kb / 1024);
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        env.memory_total_mb = parse_kb_field(&status, "VmRSS").map(|kb| kb / 1024);
    }
    env.extra.push((
        "corral.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    ));
    env
}

#[cfg(test)]
mod tests {
    use crate::admin::probe;

    #[test]
    fn probe_parsers() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(probe::parse_max_open_files(limits), Some(1024));
        assert_eq!(
            probe::parse_max_open_files(
                "Max open files            unlimited     unlimited   files"
            ),
            None
        );
        let meminfo =
            "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n";
        assert_eq!(probe::parse_kb_field(meminfo, "MemTotal"), Some(16_384_000));
        assert_eq!(
            probe::parse_kb_field(meminfo, "MemAvailable"),
            Some(8_192_000)
        );
        assert_eq!(probe::parse_kb_field(meminfo, "Mem"), None);
    }

    #[test]
    fn probes_run_on_this_machine() {
        // Linux CI: the /proc readers work and give sane numbers.
        let open = probe::open_fd_count().expect("/proc/self/fd");
        assert!(open >= 3, "{open}");
        if let Some(max) = probe::max_fd_count() {
            assert!(max >= open);
        }
        let env = probe::env_info();
        assert_eq!(env.os_name, "Linux");
        assert!(env.memory_max_mb.unwrap_or(0) > 0);
        let dir = std::env::temp_dir().join(format!("corral-admin-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(probe::dir_size_bytes(&dir), 15);
        assert_eq!(probe::dir_size_bytes(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
