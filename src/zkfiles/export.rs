//! `corral export-zookeeper`: a corral data dir into a ZooKeeper data dir, so a user can go
//! back. It recovers the tree as corral's startup does (the newest snapshot and the log after
//! it) and writes it as one ZooKeeper snapshot, `<to>/version-2/snapshot.<zxid>`, which
//! ZooKeeper 3.5 and later load (no transaction log is needed). Built beside `--to` and renamed
//! into place, as the import is.

use std::fs;
use std::path::{Path, PathBuf};

use super::{at, epoch_of, snap, Args, Staged, VERSION_DIR};

pub const USAGE: &str = "\
usage: corral export-zookeeper --from <corral dataDir> [--from-log <corral dataLogDir>]
                               --to <ZooKeeper dataDir> [--force]
  Recovers corral's tree (as starting corral would) and writes it as a ZooKeeper snapshot
  in <to>/version-2. Stop corral first.
  --force  replace a --to that is not empty
";

/// What was exported.
#[derive(Debug)]
pub struct Summary {
    pub snapshot: PathBuf,
    pub zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
}

/// `corral export-zookeeper ...`: exit status 0 when exported, 1 when refused, 2 for usage.
pub fn main(args: &[String]) -> i32 {
    let args = match Args::parse(args) {
        Ok(a) if a.help => {
            print!("{USAGE}");
            return 0;
        }
        Ok(a) => a,
        Err(e) => {
            eprint!("corral export-zookeeper: {e}\n{USAGE}");
            return 2;
        }
    };
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        eprint!("corral export-zookeeper: --from and --to are required\n{USAGE}");
        return 2;
    };
    match run(from, args.from_log.as_deref(), to, args.force) {
        Ok(s) => {
            println!(
                "exported {} znodes and {} sessions at zxid {:#x} into {}",
                s.nodes,
                s.sessions,
                s.zxid,
                to.join(VERSION_DIR)
                    .join(s.snapshot.file_name().unwrap_or_default())
                    .display()
            );
            0
        }
        Err(e) => {
            eprintln!("corral export-zookeeper: {e}");
            1
        }
    }
}

/// Exports the corral data dir `from` (its log in `from_log`, if apart) into `to`.
pub fn run(
    from: &Path,
    from_log: Option<&Path>,
    to: &Path,
    force: bool,
) -> Result<Summary, String> {
    let snap_dir = crate::server::snapshots::snapshot_dir(from);
    let log_root = from_log.unwrap_or(from);
    let wal = log_root.join("wal");
    if !snap_dir.is_dir() && !wal.is_dir() {
        return Err(format!(
            "{}: not a corral data dir (no snapshots/ or wal/ in it)",
            from.display()
        ));
    }
    // A running server must not have its log read (and a torn tail cut) under it.
    let _claims = claim(from, log_root)?;
    let staged = Staged::new(to, force, &[&snap_dir, &wal])?;
    let recovered = crate::storage::recover::recover(&wal, &snap_dir)
        .map_err(|e| format!("recovering {}: {e}", from.display()))?;
    let tree = recovered.tree;
    let zxid = tree.last_zxid();
    let v2 = staged.path().join(VERSION_DIR);
    fs::create_dir(&v2).map_err(at(&v2))?;
    let (bytes, counts) = snap::write(&tree);
    let name = format!("snapshot.{:x}", zxid as u64);
    let path = v2.join(&name);
    fs::write(&path, bytes).map_err(at(&path))?;
    // A quorum member reads these; ZooKeeper refuses a currentEpoch older than its last zxid.
    let epoch = epoch_of(zxid);
    for file in ["acceptedEpoch", "currentEpoch"] {
        let p = v2.join(file);
        fs::write(&p, epoch.to_string()).map_err(at(&p))?;
    }
    staged.commit()?;
    Ok(Summary {
        snapshot: to.join(VERSION_DIR).join(name),
        zxid,
        nodes: counts.nodes,
        sessions: counts.sessions,
    })
}

/// The claims a corral server takes on its directories: one held means a server runs there.
fn claim(data: &Path, log: &Path) -> Result<Vec<crate::server::claim::Claim>, String> {
    let mut claims = vec![crate::server::claim::dir(data, "dataDir").map_err(|e| e.to_string())?];
    if log != data {
        claims.push(crate::server::claim::dir(log, "dataLogDir").map_err(|e| e.to_string())?);
    }
    Ok(claims)
}
