//! The admin server's `restore` on disk: checking an uploaded snapshot completely before
//! anything changes ([`validate`]), and installing it as the store's newest snapshot at a zxid
//! newer than anything the server has logged ([`install`]), so zxids never go back and
//! recovery starts from it.
//!
//! The upload is a snapshot in corral's format (what `GET /commands/snapshot` sends). Its
//! frames carry CRCs, but its header's zxid does not, so the checks add what a damaged or
//! crafted upload could otherwise slip past: no byte after the end frame, every node under a
//! parent listed before it with a valid path, and no node changed after the snapshot's zxid.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use super::learner::{reset_log, sync_dir};
use super::mapped::Mapped;
use super::recover::{at, snapshots};
use super::snapshot::{snapshot_name, Entry, Reader};
use crate::tree::DataTree;

/// Where the zxid sits in a snapshot's header (after the magic and the version).
const ZXID_OFFSET: u64 = 12;

/// What a valid upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The zxid in the snapshot's header: the state it holds.
    pub zxid: i64,
    pub nodes: i64,
    pub sessions: i64,
}

/// Reads the snapshot at `path` as recovery would, plus the checks in the module doc. An
/// error says what is wrong, for the operator.
pub fn validate(path: &Path) -> Result<Checked, String> {
    let map = Mapped::open(path).map_err(|e| format!("cannot read the upload: {e}"))?;
    let len = map.len();
    let mut r = Reader::new(Bytes::from_owner(map))?;
    let zxid = r.zxid();
    if zxid < 0 {
        return Err(format!("the snapshot's zxid {zxid:#x} is negative"));
    }
    let mut tree = DataTree::new();
    let mut newest = 0i64;
    loop {
        let at = r.offset();
        match r.next_entry()? {
            Some(Entry::Session { id, entry }) => tree.restore_session(id, entry),
            Some(Entry::Node { path, node }) => {
                if path != "/" && crate::tree::validate_path(&path).is_err() {
                    return Err(format!("node at offset {at} has an invalid path {path:?}"));
                }
                newest = newest.max(node.czxid).max(node.mzxid).max(node.pzxid);
                tree.restore_node(&path, node);
                if tree.get(&path).is_none() {
                    return Err(format!(
                        "node {path:?} at offset {at} comes before its parent"
                    ));
                }
            }
            Some(Entry::End { nodes, sessions }) => {
                if r.offset() != len {
                    return Err(format!(
                        "{} bytes after the snapshot's end frame",
                        len - r.offset()
                    ));
                }
                if newest > zxid {
                    return Err(format!(
                        "a node was changed at zxid {newest:#x}, after the snapshot's zxid {zxid:#x}"
                    ));
                }
                return Ok(Checked {
                    zxid,
                    nodes,
                    sessions,
                });
            }
            None => return Err("snapshot ends before its end frame".into()),
        }
    }
}

/// Installs the checked upload at `upload` (in the same filesystem as `snap_dir`) as the
/// newest snapshot, at `zxid`: its header is rewritten to `zxid`, it is renamed to
/// `snap-<zxid>.snap`, and the log is replaced by one empty segment (the old segments go to
/// the log's `discarded/`, emptied at the next start). Durable before it returns. The rename
/// is the point of no return: before it the store is untouched, after it recovery loads the
/// restored tree (every older log record is at most `zxid - 1`, so replay skips them even if
/// the log's reset did not finish). Returns whether the rename happened, with any error.
pub fn install(
    upload: &Path,
    log_dir: &Path,
    snap_dir: &Path,
    zxid: i64,
) -> (bool, io::Result<()>) {
    let staged = (|| {
        let f = OpenOptions::new()
            .write(true)
            .open(upload)
            .map_err(at(upload))?;
        f.write_all_at(&zxid.to_be_bytes(), ZXID_OFFSET)
            .and_then(|_| f.sync_all())
            .map_err(at(upload))?;
        fs::create_dir_all(snap_dir).map_err(at(snap_dir))?;
        // Any snapshot at or past `zxid` would be loaded instead (none should exist: `zxid`
        // is past everything logged).
        for (z, p) in snapshots(snap_dir)? {
            if z >= zxid {
                fs::remove_file(&p).map_err(at(&p))?;
            }
        }
        let target = snap_dir.join(snapshot_name(zxid));
        fs::rename(upload, &target).map_err(at(&target))?;
        Ok::<_, io::Error>(())
    })();
    if let Err(e) = staged {
        return (false, Err(e));
    }
    let rest = (|| {
        sync_dir(snap_dir)?;
        if let Some(parent) = upload.parent() {
            sync_dir(parent)?;
        }
        reset_log(log_dir)
    })();
    (true, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::recover::recover;
    use crate::storage::snapshot::Cursor;
    use crate::txn::{Txn, TxnOp};
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-restore-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn create(path: &str, zxid: i64) -> Txn {
        Txn {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 0,
            op: TxnOp::Create {
                opcode: 1,
                path: path.into(),
                data: Some(crate::txn::Data::from(&b"v"[..])),
                acl: vec![],
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
        }
    }

    fn snapshot_of(tree: &DataTree) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = Cursor::new();
        c.begin(tree, &mut out);
        while !c.step(tree, 100, &mut out) {}
        out
    }

    fn sample() -> Vec<u8> {
        let mut t = DataTree::new();
        t.apply(&create("/a", 1));
        t.apply(&create("/a/b", 2));
        snapshot_of(&t)
    }

    fn check(bytes: &[u8], dir: &Path) -> Result<Checked, String> {
        let p = dir.join("upload");
        fs::write(&p, bytes).unwrap();
        validate(&p)
    }

    #[test]
    fn a_snapshot_validates_and_damage_does_not() {
        let d = tmp("validate");
        let good = sample();
        let c = check(&good, &d).unwrap();
        assert_eq!(c.zxid, 2);
        for at in [HEADER_END, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(check(&bad, &d).is_err(), "flipped byte at {at} accepted");
        }
        assert!(check(&good[..good.len() - 3], &d).is_err());
        assert!(check(&good[..10], &d).is_err());
        assert!(check(b"", &d).is_err());
        let mut longer = good.clone();
        longer.push(0);
        assert!(check(&longer, &d)
            .unwrap_err()
            .contains("after the snapshot's end"));
        // A header zxid older than the nodes it holds.
        let mut old = good.clone();
        old[12..20].copy_from_slice(&1i64.to_be_bytes());
        assert!(check(&old, &d)
            .unwrap_err()
            .contains("after the snapshot's zxid"));
        fs::remove_dir_all(&d).unwrap();
    }

    /// The first byte of the first frame (past the header).
    const HEADER_END: usize = 20;

    #[test]
    fn an_installed_snapshot_is_what_recovery_loads_at_the_new_zxid() {
        let d = tmp("install");
        let (log_dir, snap_dir) = (d.join("wal"), d.join("snapshots"));
        fs::create_dir_all(&log_dir).unwrap();
        // An older store: a snapshot at 5 and a log segment with records after it.
        let mut old = DataTree::new();
        for z in 1..=5 {
            old.apply(&create(&format!("/old{z}"), z));
        }
        fs::create_dir_all(&snap_dir).unwrap();
        fs::write(snap_dir.join(snapshot_name(5)), snapshot_of(&old)).unwrap();
        let upload = d.join("upload");
        fs::write(&upload, sample()).unwrap();
        let (renamed, r) = install(&upload, &log_dir, &snap_dir, 9);
        assert!(renamed);
        r.unwrap();
        assert!(!upload.exists());
        let rec = recover(&log_dir, &snap_dir).unwrap();
        assert_eq!(rec.last_zxid, 9);
        assert!(rec.tree.get("/a/b").is_some());
        assert!(rec.tree.get("/old1").is_none());
        fs::remove_dir_all(&d).unwrap();
    }
}
