//! The storage side of a learner's sync with its leader (Zab): a TRUNC cuts the log back to a
//! zxid (`truncate`), a SNAP replaces the store with the leader's snapshot (`install_snapshot`),
//! and `wipe` empties the store when neither can be done. A DIFF needs nothing here (the
//! records are appended as usual).
//!
//! Plain blocking std I/O, as recovery uses: these run on the write core's executor while the
//! member is not serving clients (it is syncing with its leader), so nothing waits on them but
//! the sync itself. The caller closes its `Wal` first (`Wal::close`) and runs `recover` after.
//!
//! Every step is durable before the next one starts, in an order chosen so that a crash between
//! two steps leaves a store that recovers to a consistent state (docs/design/storage.md,
//! "Truncate and install (learner sync)"). Segment sequence numbers are never reused after
//! `wipe` or `install_snapshot`: they leave an empty segment numbered past every old one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::log::{follows, header, header_ok, scan, segment_name, End, BLOCK, RECORD_HEADER};
use super::recover::{at, covered, segments, snapshots};
use super::snapshot::{load, snapshot_name, Reader};

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Where segments dropped from the log wait to be deleted, under the log directory. Recovery
/// reads only `wal-*.log` files of the log directory itself, so what is in here is gone from
/// the log the moment the rename is durable.
pub const DISCARDED: &str = "discarded";

/// Takes segment `path` out of the log durably before the next one (so a crash leaves a
/// prefix of the removals, never a gap in the log). The segment is renamed into `DISCARDED`
/// rather than deleted: freeing a 64 MiB preallocated file costs ~11 ms here, and a SNAP can
/// drop a dozen of them while the member is not serving yet. `purge_discarded` deletes them
/// afterwards.
fn discard_synced(path: &Path, dir: &Path) -> io::Result<()> {
    let bin = dir.join(DISCARDED);
    fs::create_dir_all(&bin).map_err(at(&bin))?;
    let name = path
        .file_name()
        .ok_or_else(|| invalid_input(format!("{}", path.display())))?;
    fs::rename(path, bin.join(name)).map_err(at(path))?;
    sync_dir(dir)
}

/// Deletes what `discard_synced` set aside in `log_dir`, on a thread of its own, so neither a
/// learner's sync nor a start waits for it. Nothing depends on its completion: a crash leaves
/// the rest for the next start.
pub fn purge_discarded(log_dir: &Path) {
    let bin = log_dir.join(DISCARDED);
    if !bin.exists() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("corral-purge".into())
        .spawn(move || {
            // The directory itself stays: a later discard may be renaming into it.
            let Ok(entries) = fs::read_dir(&bin) else {
                return;
            };
            for e in entries.flatten() {
                if let Err(err) = fs::remove_file(e.path()) {
                    tracing::warn!("deleting discarded {}: {err}", e.path().display());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the thread deleting discarded log segments: {e}");
    }
}

/// Whether a snapshot file reads back completely (recovery would load it).
fn snapshot_ok(path: &Path) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    let Ok(mut r) = Reader::new(bytes.into()) else {
        return false;
    };
    loop {
        match r.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Where the log must be cut: the first record past the target zxid.
struct Cut {
    path: PathBuf,
    /// Offset of that record (the kept records end here).
    at: usize,
    /// Offset just past the segment's last good record.
    valid_end: usize,
    bytes: Vec<u8>,
    /// Segments after this one (all their records are past the target).
    later: Vec<PathBuf>,
}

/// Checks that the log replays from `base` (the snapshot recovery will start from, or none)
/// up to `zxid`, and finds where records past `zxid` begin. Reads the segments recovery would
/// read, and none after the cut.
fn locate(log_dir: &Path, base: Option<i64>, zxid: i64) -> io::Result<Option<Cut>> {
    let segs = segments(log_dir)?;
    let mut reached = base == Some(zxid) || (base.is_none() && zxid == 0);
    let mut started = base.is_none();
    let mut prev = None;
    for (i, (_, path)) in segs.iter().enumerate() {
        let is_last = i + 1 == segs.len();
        if !is_last && covered(base, &segs[i + 1].1)? {
            prev = None;
            continue;
        }
        let bytes = fs::read(path).map_err(at(path))?;
        if !header_ok(&bytes) {
            if is_last {
                // Half-created when a crash came: it holds no record (recovery removes it).
                break;
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad segment header", path.display()),
            ));
        }
        let s = scan(&bytes, prev);
        if let (End::Torn(why), false) = (s.end, is_last) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: damaged record at offset {} ({why}) with newer segments after it",
                    path.display(),
                    s.valid_end
                ),
            ));
        }
        for (j, t) in s.txns.iter().enumerate() {
            if base.is_some_and(|b| t.zxid <= b) {
                continue;
            }
            if let (false, Some(b)) = (started, base) {
                if !follows(b, t.zxid) {
                    return Err(invalid_input(format!(
                        "cannot truncate to {zxid:#x}: the log resumes at {:#x}, not after the snapshot at {b:#x}",
                        t.zxid
                    )));
                }
                started = true;
            }
            if t.zxid <= zxid {
                reached |= t.zxid == zxid;
                continue;
            }
            if !reached {
                return Err(unreached(base, zxid));
            }
            let at = s.payloads[j].start - RECORD_HEADER;
            let valid_end = s.valid_end;
            return Ok(Some(Cut {
                path: path.clone(),
                at,
                valid_end,
                bytes,
                later: segs[i + 1..].iter().map(|(_, p)| p.clone()).collect(),
            }));
        }
        if let Some(t) = s.txns.last() {
            prev = Some(t.zxid);
        }
    }
    if !reached {
        return Err(unreached(base, zxid));
    }
    Ok(None)
}

fn unreached(base: Option<i64>, zxid: i64) -> io::Error {
    let from = base.map_or("the start".to_string(), |b| format!("snapshot {b:#x}"));
    invalid_input(format!(
        "cannot truncate to {zxid:#x}: no snapshot is at it and the log from {from} has no record {zxid:#x}"
    ))
}

/// Zeroes `cut.at` up to the end of the old records (and of any torn bytes after them: up to
/// the first all-zero block), not the whole preallocated file; durable before returning.
fn zero_after(cut: &Cut) -> io::Result<()> {
    let len = cut.bytes.len();
    let mut stop = ((cut.valid_end / BLOCK + 1) * BLOCK).min(len);
    while stop < len
        && cut.bytes[stop..(stop + BLOCK).min(len)]
            .iter()
            .any(|&b| b != 0)
    {
        stop += BLOCK;
    }
    let stop = stop.min(len);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&cut.path)
        .map_err(at(&cut.path))?;
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; (stop - cut.at).min(1 << 20)];
    let mut pos = cut.at;
    while pos < stop {
        let n = (stop - pos).min(zeros.len());
        f.write_all_at(&zeros[..n], pos as u64)
            .map_err(at(&cut.path))?;
        pos += n;
    }
    f.sync_data().map_err(at(&cut.path))
}

/// A TRUNC: durably drops every log record past `zxid` and every snapshot past it, so that
/// `recover` then yields exactly the state at `zxid` and the writer continues right after
/// record `zxid`. Fails with `InvalidInput`, changing nothing, when the store cannot get back
/// there (no usable snapshot at or below `zxid` from which the log reaches it, or no record
/// `zxid` and no snapshot at it): the caller then wipes and syncs from zero.
///
/// Sequence numbers of the deleted later segments may be used again by the writer: every
/// deletion is durable before this returns, so no old file of that name can come back.
pub fn truncate(log_dir: &Path, snap_dir: &Path, zxid: i64) -> io::Result<()> {
    let snaps = snapshots(snap_dir)?;
    // Once the newer ones are gone, recovery starts from the newest that reads back.
    let base = snaps
        .iter()
        .filter(|(z, _)| *z <= zxid)
        .find(|(_, p)| snapshot_ok(p))
        .map(|(z, _)| *z);
    if base.is_none() {
        if let Some((z, _)) = snaps.iter().find(|(_, p)| snapshot_ok(p)) {
            // Without that snapshot the log would replay from nothing: its start is gone.
            return Err(invalid_input(format!(
                "cannot truncate to {zxid:#x}: it is below every usable snapshot (the newest is {z:#x})"
            )));
        }
    }
    let cut = locate(log_dir, base, zxid)?;
    // Snapshots first: with them gone the rest of the log still replays onto the base.
    let mut removed = false;
    for (_, p) in snaps.iter().filter(|(z, _)| *z > zxid) {
        fs::remove_file(p).map_err(at(p))?;
        removed = true;
    }
    if removed {
        sync_dir(snap_dir)?;
    }
    if let Some(cut) = cut {
        // Newest first, each durable: a crash leaves a prefix of the log.
        for p in cut.later.iter().rev() {
            discard_synced(p, log_dir)?;
        }
        zero_after(&cut)?;
    }
    Ok(())
}

/// Writes segment `seq` holding only its header, durably.
fn empty_segment(log_dir: &Path, seq: u64) -> io::Result<()> {
    let path = log_dir.join(segment_name(seq));
    let mut f = File::create(&path).map_err(at(&path))?;
    f.write_all(&header())
        .and_then(|_| f.sync_data())
        .map_err(at(&path))?;
    sync_dir(log_dir)
}

/// Replaces every segment with one empty segment numbered after all of them (so sequence
/// numbers never go back), removing the old ones newest first, each durably.
pub(crate) fn reset_log(log_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(log_dir).map_err(at(log_dir))?;
    let segs = segments(log_dir)?;
    let next = segs.last().map_or(1, |(s, _)| s + 1);
    empty_segment(log_dir, next)?;
    for (_, p) in segs.iter().rev() {
        discard_synced(p, log_dir)?;
    }
    Ok(())
}

/// Empties the store: every log segment and every snapshot, durably. The log is left as one
/// empty segment numbered after the old ones, so `recover` then returns an empty tree and a
/// `next_seq` past every sequence number used before.
pub fn wipe(log_dir: &Path, snap_dir: &Path) -> io::Result<()> {
    // The log first (newest first): until the snapshots go, each crash state is a snapshot
    // plus a prefix of its log.
    reset_log(log_dir)?;
    let snaps = snapshots(snap_dir)?;
    for (_, p) in &snaps {
        fs::remove_file(p).map_err(at(p))?;
    }
    if !snaps.is_empty() {
        sync_dir(snap_dir)?;
    }
    Ok(())
}

/// A SNAP: installs `data`, a complete snapshot file in corral's format whose own zxid is
/// `zxid`, as the store's newest snapshot and drops the whole log and every snapshot past
/// `zxid` (older ones may stay). `recover` then returns the snapshot's tree with
/// `last_zxid == zxid`, and the writer continues in a fresh segment numbered after every old
/// one. `data` is checked completely first; a bad one (`InvalidData`) changes nothing.
pub fn install_snapshot(log_dir: &Path, snap_dir: &Path, zxid: i64, data: &[u8]) -> io::Result<()> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let (_, z) = load(data).map_err(|e| bad(format!("snapshot to install: {e}")))?;
    if z != zxid {
        return Err(bad(format!(
            "snapshot to install is at {z:#x}, not at {zxid:#x}"
        )));
    }
    fs::create_dir_all(snap_dir).map_err(at(snap_dir))?;
    let name = snapshot_name(zxid);
    let tmp = snap_dir.join(format!("{name}.tmp"));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, snap_dir.join(&name))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(at(&tmp)(e));
    }
    sync_dir(snap_dir)?;
    // Newer snapshots would be loaded instead of this one: they go before the log does.
    let mut removed = false;
    for (_, p) in snapshots(snap_dir)?.iter().filter(|(s, _)| *s > zxid) {
        fs::remove_file(p).map_err(at(p))?;
        removed = true;
    }
    if removed {
        sync_dir(snap_dir)?;
    }
    reset_log(log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::{TailBuffer, HEADER_LEN};
    use crate::storage::recover::{recover, Tail};
    use crate::storage::snapshot::Cursor;
    use crate::tree::DataTree;
    use crate::txn::{Txn, TxnOp};
    use std::os::unix::fs::FileExt;

    /// A create of `/<name><zxid>`: two histories differ by `name`.
    fn create(name: &str, zxid: i64) -> Txn {
        Txn {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 0,
            op: TxnOp::Create {
                opcode: 1,
                path: format!("/{name}{zxid}"),
                data: Some(crate::txn::Data::from(&b"v"[..])),
                acl: vec![],
                ephemeral_owner: 0,
                parent_cversion: zxid as i32,
            },
        }
    }

    fn creates(name: &str, zxids: std::ops::RangeInclusive<i64>) -> Vec<Txn> {
        zxids.map(|z| create(name, z)).collect()
    }

    fn tree(txns: &[Txn]) -> DataTree {
        let mut t = DataTree::new();
        for x in txns {
            t.apply(x);
        }
        t
    }

    /// A segment as the writer leaves it: header, records, zero-filled space after them.
    fn write_segment(dir: &Path, seq: u64, txns: &[Txn]) -> PathBuf {
        let mut file = header();
        let mut tail = TailBuffer::new(HEADER_LEN as u64, &[]);
        for t in txns {
            tail.push(t);
        }
        let (at, b) = tail.pending();
        file.resize(at as usize + b.len() + 4 * BLOCK, 0);
        file[at as usize..at as usize + b.len()].copy_from_slice(&b);
        let p = dir.join(segment_name(seq));
        fs::write(&p, file).unwrap();
        p
    }

    fn snapshot_bytes(t: &DataTree) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = Cursor::new();
        c.begin(t, &mut out);
        while !c.step(t, 100, &mut out) {}
        out
    }

    fn write_snapshot(snaps: &Path, txns: &[Txn]) {
        fs::create_dir_all(snaps).unwrap();
        let t = tree(txns);
        fs::write(snaps.join(snapshot_name(t.last_zxid())), snapshot_bytes(&t)).unwrap();
    }

    /// What the writer does after recovery: appends records at the recovered tail.
    fn append_at(tail: &Tail, txns: &[Txn]) {
        let mut buf = TailBuffer::new(tail.end, &tail.partial);
        for t in txns {
            buf.push(t);
        }
        let (at, b) = buf.pending();
        let f = fs::OpenOptions::new().write(true).open(&tail.path).unwrap();
        f.write_all_at(&b, at).unwrap();
        f.sync_data().unwrap();
    }

    fn dirs(name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let d = std::env::temp_dir().join(format!("corral-learner-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let (log, snaps) = (d.join("wal"), d.join("snapshots"));
        fs::create_dir_all(&log).unwrap();
        fs::create_dir_all(&snaps).unwrap();
        (d, log, snaps)
    }

    fn names(dir: &Path) -> Vec<String> {
        // Files only: `DISCARDED` is a directory beside the segments.
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn snapshot_zxids(snaps: &Path) -> Vec<i64> {
        let mut v: Vec<i64> = snapshots(snaps).unwrap().iter().map(|s| s.0).collect();
        v.sort();
        v
    }

    #[test]
    fn truncate_cuts_the_log_after_a_record_and_the_writer_continues_there() {
        let (d, log, snaps) = dirs("mid");
        let old = creates("a", 1..=8);
        write_segment(&log, 1, &old[..3]);
        let cut_seg = write_segment(&log, 2, &old[3..6]);
        write_segment(&log, 3, &old[6..]);
        write_snapshot(&snaps, &old[..2]);
        write_snapshot(&snaps, &old[..7]);
        let len_before = fs::metadata(&cut_seg).unwrap().len();

        truncate(&log, &snaps, 5).unwrap();
        assert_eq!(
            snapshot_zxids(&snaps),
            vec![2],
            "the snapshot past 5 is gone"
        );
        assert_eq!(names(&log), vec![segment_name(1), segment_name(2)]);
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 5);
        assert_eq!(r.tree.last_zxid(), 5);
        assert_eq!(r.tree.digest(), tree(&old[..5]).digest());
        assert_eq!(r.recent_base, 2);
        assert_eq!(r.recent.iter().map(|x| x.0).collect::<Vec<_>>(), [3, 4, 5]);
        let tail = r.tail.unwrap();
        assert_eq!(tail.seq, 2);
        // The tail is right after record 5: records 4 and 5 before it, zeros after it.
        let bytes = fs::read(&cut_seg).unwrap();
        assert_eq!(bytes.len() as u64, len_before, "the file keeps its size");
        let s = scan(&bytes, None);
        assert_eq!(s.valid_end as u64, tail.end);
        assert_eq!(s.txns, old[3..5]);
        assert!(bytes[tail.end as usize..].iter().all(|&b| b == 0));

        // A new history from 6 on, as the leader sends it, is replayed after a restart.
        let new = creates("b", 6..=9);
        append_at(&tail, &new);
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 9);
        let mut expect = old[..5].to_vec();
        expect.extend(new);
        assert_eq!(r.tree.digest(), tree(&expect).digest());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncate_to_a_snapshot_the_log_does_not_hold() {
        let (d, log, snaps) = dirs("snap");
        let old = creates("a", 1..=8);
        write_snapshot(&snaps, &old[..5]);
        // The log before 6 was purged.
        let seg = write_segment(&log, 4, &old[5..]);
        truncate(&log, &snaps, 5).unwrap();
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 5);
        assert_eq!(r.tree.digest(), tree(&old[..5]).digest());
        let tail = r.tail.unwrap();
        assert_eq!((tail.seq, tail.end), (4, HEADER_LEN as u64));
        assert!(fs::read(&seg).unwrap()[HEADER_LEN..]
            .iter()
            .all(|&b| b == 0));
        assert!(r.recent.is_empty());
        assert_eq!(r.recent_base, 5);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncate_to_zero_and_to_the_end() {
        let (d, log, snaps) = dirs("ends");
        let old = creates("a", 1..=4);
        write_segment(&log, 1, &old);
        // To the last record: nothing changes.
        truncate(&log, &snaps, 4).unwrap();
        assert_eq!(recover(&log, &snaps).unwrap().last_zxid, 4);
        // To zero without snapshots: every record goes, the writer starts at the header.
        truncate(&log, &snaps, 0).unwrap();
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 0);
        assert_eq!(r.tree.digest(), DataTree::new().digest());
        assert_eq!(r.tail.unwrap().end, HEADER_LEN as u64);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncate_zeroes_a_torn_tail_after_the_cut_too() {
        let (d, log, snaps) = dirs("torn");
        let old = creates("a", 1..=5);
        let p = write_segment(&log, 1, &old);
        let mut bytes = fs::read(&p).unwrap();
        let end = scan(&bytes, None).valid_end;
        // Half a record's worth of junk after the last good one, across a block boundary.
        for b in &mut bytes[end..end + BLOCK + 10] {
            *b = 0xab;
        }
        fs::write(&p, &bytes).unwrap();
        truncate(&log, &snaps, 3).unwrap();
        let bytes = fs::read(&p).unwrap();
        let s = scan(&bytes, None);
        assert_eq!(s.txns, old[..3]);
        assert!(bytes[s.valid_end..].iter().all(|&b| b == 0));
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 3);
        assert!(r.stats.torn.is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncate_refuses_what_it_cannot_reach_and_changes_nothing() {
        let (d, log, snaps) = dirs("refuse");
        let old = creates("a", 1..=8);
        write_snapshot(&snaps, &old[..5]);
        write_segment(&log, 1, &old[5..]);
        let before = (
            names(&log),
            names(&snaps),
            fs::read(log.join(segment_name(1))).unwrap(),
        );
        let kind = |z| truncate(&log, &snaps, z).unwrap_err().kind();
        // Below the only snapshot.
        assert_eq!(kind(3), io::ErrorKind::InvalidInput);
        // Past the log's end.
        assert_eq!(kind(12), io::ErrorKind::InvalidInput);
        let after = (
            names(&log),
            names(&snaps),
            fs::read(log.join(segment_name(1))).unwrap(),
        );
        assert!(before == after, "a refused truncate changed the store");
        // A log that does not continue the snapshot it would replay onto.
        let (d2, log2, snaps2) = dirs("refuse-gap");
        write_snapshot(&snaps2, &old[..2]);
        write_segment(&log2, 1, &old[3..]);
        let e = truncate(&log2, &snaps2, 6).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        // No snapshot, and a zxid the log never had.
        let (d3, log3, snaps3) = dirs("refuse-missing");
        write_segment(
            &log3,
            1,
            &[create("a", 1), create("a", 2), create("a", 1 << 32 | 1)],
        );
        let e = truncate(&log3, &snaps3, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        for d in [d, d2, d3] {
            fs::remove_dir_all(&d).unwrap();
        }
    }

    #[test]
    fn wipe_empties_the_store_and_keeps_sequence_numbers_rising() {
        let (d, log, snaps) = dirs("wipe");
        let old = creates("a", 1..=6);
        write_segment(&log, 7, &old[..3]);
        write_segment(&log, 8, &old[3..]);
        write_snapshot(&snaps, &old[..4]);
        wipe(&log, &snaps).unwrap();
        assert!(snapshot_zxids(&snaps).is_empty());
        assert_eq!(names(&log), vec![segment_name(9)]);
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 0);
        assert_eq!(r.tree.digest(), DataTree::new().digest());
        assert_eq!(r.tail.as_ref().unwrap().seq, 9);
        assert_eq!(r.next_seq, 10);
        append_at(r.tail.as_ref().unwrap(), &creates("b", 1..=2));
        assert_eq!(recover(&log, &snaps).unwrap().last_zxid, 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_installed_snapshot_replaces_the_store_and_the_log_continues_after_it() {
        let (d, log, snaps) = dirs("install");
        let old = creates("a", 1..=10);
        write_segment(&log, 1, &old[..4]);
        write_segment(&log, 2, &old[4..8]);
        write_segment(&log, 3, &old[8..]);
        write_snapshot(&snaps, &old[..2]);
        write_snapshot(&snaps, &old[..9]);
        let leader = creates("b", 1..=6);
        let data = snapshot_bytes(&tree(&leader));

        // Refused, with nothing changed: the zxid does not match, or the file is damaged.
        let before = (names(&log), names(&snaps));
        let e = install_snapshot(&log, &snaps, 7, &data).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = install_snapshot(&log, &snaps, 6, &data[..data.len() - 1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(before == (names(&log), names(&snaps)));

        install_snapshot(&log, &snaps, 6, &data).unwrap();
        assert_eq!(snapshot_zxids(&snaps), vec![2, 6]);
        assert_eq!(fs::read(snaps.join(snapshot_name(6))).unwrap(), data);
        assert_eq!(names(&log), vec![segment_name(4)]);
        // The old segments were set aside, not deleted; the purge deletes them off the caller's
        // thread.
        let bin = log.join(DISCARDED);
        assert_eq!(names(&bin), (1..=3).map(segment_name).collect::<Vec<_>>());
        purge_discarded(&log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !names(&bin).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "discarded segments not deleted"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 6);
        assert_eq!(r.tree.digest(), tree(&leader).digest());
        assert!(r.recent.is_empty());
        assert_eq!(r.recent_base, 6);
        assert_eq!(r.next_seq, 5, "no sequence number is used twice");
        let tail = r.tail.unwrap();
        assert_eq!((tail.seq, tail.end), (4, HEADER_LEN as u64));

        // The leader's next proposals, appended where the writer continues.
        let more = creates("b", 7..=9);
        append_at(&tail, &more);
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 9);
        let mut all = leader.clone();
        all.extend(more);
        assert_eq!(r.tree.digest(), tree(&all).digest());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn installing_into_an_empty_store() {
        let (d, log, snaps) = dirs("install-empty");
        fs::remove_dir_all(&snaps).unwrap();
        let leader = creates("b", 1..=3);
        install_snapshot(&log, &snaps, 3, &snapshot_bytes(&tree(&leader))).unwrap();
        let r = recover(&log, &snaps).unwrap();
        assert_eq!(r.last_zxid, 3);
        assert_eq!(r.tree.digest(), tree(&leader).digest());
        assert_eq!(r.tail.unwrap().seq, 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
