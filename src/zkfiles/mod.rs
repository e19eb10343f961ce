//! Apache ZooKeeper's own data files, read and written, so a user can move from ZooKeeper to
//! corral and back: `corral import-zookeeper` reads a ZooKeeper data dir (the newest snapshot
//! and the transaction logs after it) and writes a corral data dir; `corral export-zookeeper`
//! does the reverse (`import.rs`, `export.rs`).
//!
//! The formats are ZooKeeper's jute records (`snap.rs`: FileSnap and SnapStream's snapshot,
//! `txnlog.rs`: FileTxnLog's log); both are checked with Adler32 as ZooKeeper checks them.
//! Session passwords are not stored by ZooKeeper: it derives each from the session id, and so
//! do we ([`session_password`]), so a client of the old server can resume its session.

pub mod export;
pub mod import;
pub mod snap;
pub mod txnlog;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// ZooKeeper's files live in `<dataDir>/version-2/` (FileTxnSnapLog.version).
pub const VERSION_DIR: &str = "version-2";

/// ZooKeeper's FileHeader version for snapshots and logs.
pub const FILE_VERSION: i32 = 2;

/// Adler32 (RFC 1950), the checksum of ZooKeeper's snapshots and log records.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // 5552 bytes is the most that can be summed before `b` could overflow a u32.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// ZooKeeper's `generatePasswd(id)`: 16 bytes of `java.util.Random(id ^ 0xB3415C00)`. ZooKeeper
/// keeps no passwords on disk; it recomputes them, and a client reconnecting with its session
/// id presents this one.
pub fn session_password(id: i64) -> [u8; 16] {
    const MULT: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((id ^ 0xB341_5C00) as u64 ^ MULT) & MASK;
    let mut out = [0u8; 16];
    for word in out.chunks_mut(4) {
        seed = seed.wrapping_mul(MULT).wrapping_add(0xB) & MASK;
        // Random.nextInt(): the top 32 of the 48 bits, low byte first into the array.
        let rnd = (seed >> 16) as u32;
        word.copy_from_slice(&rnd.to_le_bytes());
    }
    out
}

/// The zxid in a ZooKeeper file name (`snapshot.<hex>`, `log.<hex>`, with an optional
/// compression suffix), as ZooKeeper's `Util.getZxidFromName` reads it.
pub fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    u64::from_str_radix(parts.next()?, 16)
        .ok()
        .map(|z| z as i64)
}

/// Where ZooKeeper's files are under `dir`: `dir/version-2`, or `dir` itself when it is that
/// directory already.
pub fn zk_files_dir(dir: &Path) -> Result<PathBuf, String> {
    let v2 = dir.join(VERSION_DIR);
    if v2.is_dir() {
        return Ok(v2);
    }
    if dir.file_name().is_some_and(|n| n == VERSION_DIR) && dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    Err(format!(
        "{}: no ZooKeeper data here (expected the directory {})",
        dir.display(),
        v2.display()
    ))
}

/// The epoch of a zxid (its high 32 bits).
pub fn epoch_of(zxid: i64) -> u32 {
    (zxid >> 32) as u32
}

/// Names `path` in an I/O error.
fn at(path: &Path) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// A directory being written in full beside its final place and renamed there at the end, so
/// a failure leaves the target as it was (`--to` is never half-written).
struct Staged {
    tmp: PathBuf,
    to: PathBuf,
    done: bool,
}

impl Staged {
    /// Refuses a `to` that is a file, or a non-empty directory unless `force`, or one that
    /// holds any of `sources` (replacing it would delete what is being read).
    fn new(to: &Path, force: bool, sources: &[&Path]) -> Result<Staged, String> {
        if let Ok(to_real) = to.canonicalize() {
            for src in sources {
                if src.canonicalize().is_ok_and(|s| s.starts_with(&to_real)) {
                    return Err(format!(
                        "{}: holds the input {}; write somewhere else",
                        to.display(),
                        src.display()
                    ));
                }
            }
        }
        if to.exists() {
            if !to.is_dir() {
                return Err(format!("{}: exists and is not a directory", to.display()));
            }
            let non_empty = fs::read_dir(to).map_err(at(to))?.next().is_some();
            if non_empty && !force {
                return Err(format!(
                    "{}: not empty; pass --force to replace its contents",
                    to.display()
                ));
            }
        }
        let name = to
            .file_name()
            .ok_or_else(|| format!("{}: not a directory name", to.display()))?
            .to_string_lossy()
            .into_owned();
        let parent = match to.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(at(&parent))?;
        let tmp = parent.join(format!(".{name}.corral-tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(at(&tmp))?;
        }
        fs::create_dir(&tmp).map_err(at(&tmp))?;
        Ok(Staged {
            tmp,
            to: to.to_path_buf(),
            done: false,
        })
    }

    fn path(&self) -> &Path {
        &self.tmp
    }

    /// Puts the staged directory in place of `to` (an existing one, kept until then, is
    /// removed after), durably.
    fn commit(mut self) -> Result<(), String> {
        let parent = self.tmp.parent().unwrap_or(Path::new(".")).to_path_buf();
        sync_tree(&self.tmp)?;
        let old = if self.to.exists() {
            let old = parent.join(format!(
                ".{}.corral-old-{}",
                self.to.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            fs::rename(&self.to, &old).map_err(at(&self.to))?;
            Some(old)
        } else {
            None
        };
        fs::rename(&self.tmp, &self.to).map_err(at(&self.to))?;
        self.done = true;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(at(&parent))?;
        if let Some(old) = old {
            fs::remove_dir_all(&old).map_err(at(&old))?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Syncs every file and directory under `dir` (a staged tree is small: a snapshot and a few
/// small files).
fn sync_tree(dir: &Path) -> Result<(), String> {
    for e in fs::read_dir(dir).map_err(at(dir))? {
        let p = e.map_err(at(dir))?.path();
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            File::open(&p).and_then(|f| f.sync_all()).map_err(at(&p))?;
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// The command line shared by both tools.
#[derive(Debug, Default)]
pub struct Args {
    pub from: Option<PathBuf>,
    pub from_log: Option<PathBuf>,
    pub to: Option<PathBuf>,
    pub force: bool,
    pub help: bool,
}

impl Args {
    /// `--from D [--from-log D] --to D [--force]`; `--key=value` works too.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (key, inline) = match a.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{name} needs a directory"))
            };
            match key {
                "--from" => out.from = Some(value("--from")?),
                "--from-log" => out.from_log = Some(value("--from-log")?),
                "--to" => out.to = Some(value("--to")?),
                "--force" if inline.is_none() => out.force = true,
                "-h" | "--help" => out.help = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_zookeepers() {
        // From java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16]) on OpenJDK 17.
        let hex = |p: [u8; 16]| p.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(session_password(0x0100_000a_1b2c_3d4e)),
            "d3c25521b587309ab767ee6688e26e62"
        );
        assert_eq!(hex(session_password(1)), "054cc74a37327db215e702e20c73f005");
        assert_eq!(
            hex(session_password(-5)),
            "d47144b5e45e45c49c3b7fdcd66257ba"
        );
    }

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        // Long enough to cross the 5552-byte reduction step.
        let big = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &big {
            a = (a + u64::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&big), ((b << 16) | a) as u32);
    }

    #[test]
    fn names_and_args() {
        assert_eq!(zxid_from_name("snapshot.1a", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("snapshot.1a.gz", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_name("log.100000001", "log"), Some(0x1_0000_0001));
        assert_eq!(zxid_from_name("log.zz", "log"), None);
        assert_eq!(zxid_from_name("snapshot.1a", "log"), None);
        let a = Args::parse(&[
            "--from".into(),
            "/a".into(),
            "--to=/b".into(),
            "--force".into(),
        ])
        .unwrap();
        assert_eq!(a.from.as_deref(), Some(Path::new("/a")));
        assert_eq!(a.to.as_deref(), Some(Path::new("/b")));
        assert!(a.force);
        assert!(Args::parse(&["--from".into()]).is_err());
        assert!(Args::parse(&["--bogus".into()]).is_err());
    }
}
