//! A replicated member's two epochs, each in its own file as ZooKeeper keeps them (it uses its
//! snapshot directory; corral the data directory): `acceptedEpoch` (the newest epoch it agreed
//! to join) and `currentEpoch` (the newest whose history it took), each a decimal number. Zab's safety rests on both surviving a
//! crash once written, so a write goes to a temporary file, is synced, renamed into place, and
//! the directory is synced. Missing files read as 0 (a member that never joined an ensemble);
//! a file that is not a number is an error, as in ZooKeeper, rather than a guess.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

pub const ACCEPTED: &str = "acceptedEpoch";
pub const CURRENT: &str = "currentEpoch";

/// The two epochs, `(accepted, current)`.
pub fn read(dir: &Path) -> io::Result<(u32, u32)> {
    Ok((
        read_one(&dir.join(ACCEPTED))?,
        read_one(&dir.join(CURRENT))?,
    ))
}

fn read_one(path: &Path) -> io::Result<u32> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u32>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not an epoch ({e}): {text:?}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Writes both epochs durably (each file only if it changes).
pub fn write(dir: &Path, accepted: u32, current: u32) -> io::Result<()> {
    let (old_accepted, old_current) = read(dir).unwrap_or((u32::MAX, u32::MAX));
    let mut changed = false;
    for (name, old, new) in [
        (ACCEPTED, old_accepted, accepted),
        (CURRENT, old_current, current),
    ] {
        if old == new {
            continue;
        }
        let tmp = dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        write!(f, "{new}")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(name))?;
        changed = true;
    }
    if changed {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("corral-epochs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_files_are_zero_and_writes_read_back() {
        let d = scratch("rw");
        assert_eq!(read(&d).unwrap(), (0, 0));
        write(&d, 3, 2).unwrap();
        assert_eq!(read(&d).unwrap(), (3, 2));
        assert_eq!(fs::read_to_string(d.join(ACCEPTED)).unwrap(), "3");
        write(&d, 4, 4).unwrap();
        assert_eq!(read(&d).unwrap(), (4, 4));
        assert!(!d.join("currentEpoch.tmp").exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_that_is_not_a_number_is_an_error() {
        let d = scratch("bad");
        fs::write(d.join(CURRENT), "seven\n").unwrap();
        let e = read(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("currentEpoch"), "{e}");
        // A number with a newline (hand-edited) reads too.
        fs::write(d.join(CURRENT), "12\n").unwrap();
        assert_eq!(read(&d).unwrap(), (0, 12));
        let _ = fs::remove_dir_all(&d);
    }
}
