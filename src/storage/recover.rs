//! Startup recovery: load the newest complete snapshot, replay the log after it, cut a torn
//! tail, and tell the writer where to continue. Runs once, on the main thread, before any executor starts (plain std I/O is
//! fine here: nothing is being served yet).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::log::{follows, header_ok, parse_segment_name, scan, scan_each, End, BLOCK, HEADER_LEN};
use super::mapped::Mapped;
use super::snapshot::{load_bytes, parse_snapshot_name};
use crate::limits::RECENT_RECORDS;
use crate::tree::DataTree;

/// Where the writer continues: the last segment and its good end.
#[derive(Debug)]
pub struct Tail {
    pub seq: u64,
    pub path: PathBuf,
    /// Offset just past the last good record.
    pub end: u64,
    /// Bytes of the block containing `end`, from the block's start up to `end`.
    pub partial: Vec<u8>,
    /// File length: everything from `end` to here is zeros.
    pub zeroed_to: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// The snapshot the tree was loaded from (its start zxid), if any.
    pub snapshot: Option<i64>,
    /// Segments read, and those skipped because the snapshot covers them.
    pub segments: usize,
    pub segments_skipped: usize,
    pub records: usize,
    /// Bytes of a torn tail that were zeroed.
    pub discarded_bytes: u64,
    pub torn: Option<&'static str>,
}

pub struct Recovered {
    pub tree: DataTree,
    pub last_zxid: i64,
    pub tail: Option<Tail>,
    pub next_seq: u64,
    pub stats: Stats,
    /// The newest records after the snapshot (at most `limits::RECENT_RECORDS`), ascending:
    /// each zxid with its txn exactly as the log stores it (`codec::encode_txn`'s bytes, what
    /// `Wal::append_raw` takes), for a leader's DIFF to a learner.
    pub recent: Vec<(i64, Bytes)>,
    /// The zxid just before `recent[0]`: the record before it, the snapshot's zxid, or 0 for
    /// an empty store; `last_zxid` when `recent` is empty. A learner at or after it can be
    /// sent a DIFF from `recent`.
    pub recent_base: i64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Names `path` in an I/O error: a start-up failure must say which file it is about.
pub(super) fn at(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Snapshot files in `dir` with their start zxids, newest first.
pub fn snapshots(dir: &Path) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut v = Vec::new();
    if dir.exists() {
        for e in fs::read_dir(dir).map_err(at(dir))? {
            let e = e.map_err(at(dir))?;
            if let Some(z) = e.file_name().to_str().and_then(parse_snapshot_name) {
                v.push((z, e.path()));
            }
        }
    }
    v.sort_by_key(|(z, _)| std::cmp::Reverse(*z));
    Ok(v)
}

/// Segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    if !dir.exists() {
        return Ok(v);
    }
    for e in fs::read_dir(dir).map_err(at(dir))? {
        let e = e.map_err(at(dir))?;
        if let Some(seq) = e.file_name().to_str().and_then(parse_segment_name) {
            v.push((seq, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// The newest snapshot in `snap_dir` that reads back completely (older ones are the fallback
/// when the newest was cut short by a crash).
fn newest_snapshot(snap_dir: &Path) -> io::Result<Option<(DataTree, i64)>> {
    for (_, p) in snapshots(snap_dir)? {
        match load_bytes(Bytes::from_owner(Mapped::open(&p).map_err(at(&p))?)) {
            Ok(t) => return Ok(Some(t)),
            Err(e) => tracing::warn!("skipping snapshot {}: {e}", p.display()),
        }
    }
    Ok(None)
}

pub fn recover(dir: &Path, snap_dir: &Path) -> io::Result<Recovered> {
    let mut stats = Stats::default();
    let (mut tree, snap_zxid) = match newest_snapshot(snap_dir)? {
        Some((t, z)) => {
            stats.snapshot = Some(z);
            (t, Some(z))
        }
        None => (DataTree::new(), None),
    };
    let mut replay_checked = snap_zxid.is_none();
    let segs = segments(dir)?;
    let mut prev_zxid: Option<i64> = None;
    let mut tail = None;
    let mut recent = VecDeque::with_capacity(RECENT_RECORDS);
    let mut recent_base = snap_zxid.unwrap_or(0);
    let last_index = segs.len().saturating_sub(1);
    for (i, (seq, path)) in segs.iter().enumerate() {
        let is_last = i == last_index;
        if !is_last && covered(snap_zxid, &segs[i + 1].1)? {
            // Every record here is in the snapshot: no need to read it. The next segment's
            // first zxid is then checked against the snapshot, not against this one.
            stats.segments_skipped += 1;
            prev_zxid = None;
            continue;
        }
        let bytes = Mapped::open(path).map_err(at(path))?;
        if !header_ok(&bytes) {
            if is_last {
                // A crash while the segment was being created, before any record went in.
                fs::remove_file(path).map_err(at(path))?;
                break;
            }
            return Err(invalid(format!("{}: bad segment header", path.display())));
        }
        // Records are applied as they are decoded; only the newest applied ones are kept (as
        // payload ranges) for `recent`.
        let mut count = 0;
        let mut last_zxid = None;
        let mut out_of_order = None;
        let mut kept: VecDeque<(i64, std::ops::Range<usize>)> = VecDeque::new();
        let mut dropped = None;
        let (valid_end, end) = scan_each(&bytes, prev_zxid, |t, payload| {
            count += 1;
            last_zxid = Some(t.zxid);
            if out_of_order.is_some() {
                return;
            }
            match snap_zxid {
                None => {
                    tree.apply(&t);
                }
                Some(z) if t.zxid > z => {
                    if !replay_checked && !follows(z, t.zxid) {
                        out_of_order = Some(t.zxid);
                        return;
                    }
                    replay_checked = true;
                    tree.apply_replay(&t);
                }
                // In the snapshot already: not part of the log after it.
                Some(_) => return,
            }
            if kept.len() == RECENT_RECORDS {
                dropped = kept.pop_front().map(|k| k.0);
            }
            kept.push_back((t.zxid, payload));
        });
        if let (Some(first), Some(z)) = (out_of_order, snap_zxid) {
            return Err(invalid(format!(
                "the log starts at zxid {first:#x} but the snapshot needs {:#x}",
                z + 1
            )));
        }
        stats.segments += 1;
        stats.records += count;
        keep_recent(&bytes, &kept, dropped, &mut recent, &mut recent_base);
        if let Some(last) = last_zxid {
            prev_zxid = Some(last);
        }
        let s = ScanEnd { valid_end, end };
        if let End::Torn(why) = s.end {
            if !is_last {
                // The writer starts a segment only after everything before it is durable, so
                // damage here is not a crash artifact: refuse to guess.
                return Err(invalid(format!(
                    "{}: damaged record at offset {} ({why}) with newer segments after it",
                    path.display(),
                    s.valid_end
                )));
            }
            stats.torn = Some(why);
            stats.discarded_bytes = zero_torn_tail(path, &bytes, s.valid_end)?;
        }
        if is_last {
            let end = s.valid_end as u64;
            let block_start = s.valid_end - s.valid_end % BLOCK;
            tail = Some(Tail {
                seq: *seq,
                path: path.clone(),
                end,
                partial: bytes[block_start..s.valid_end].to_vec(),
                zeroed_to: bytes.len() as u64,
            });
        }
    }
    let next_seq = segs.last().map_or(1, |(s, _)| s + 1);
    if snap_zxid.is_some() {
        // Replay over a fuzzy snapshot re-adds changes the snapshot already holds.
        tree.setup_quotas();
    }
    let last_zxid = tree.last_zxid();
    if recent.is_empty() {
        recent_base = last_zxid;
    }
    Ok(Recovered {
        last_zxid,
        tree,
        tail,
        next_seq,
        stats,
        recent: recent.into(),
        recent_base,
    })
}

/// Adds the applied records of one scanned segment to `recent`, keeping the newest
/// `RECENT_RECORDS`. `kept` are the segment's newest applied records (at most that many), and
/// `dropped` the zxid of the applied record just before them, if the segment had more. Only
/// these are copied out of the segment's bytes, so a segment of many (or huge) records costs at
/// most that many copies, and no segment buffer outlives its scan.
fn keep_recent(
    bytes: &[u8],
    kept: &VecDeque<(i64, std::ops::Range<usize>)>,
    dropped: Option<i64>,
    recent: &mut VecDeque<(i64, Bytes)>,
    base: &mut i64,
) {
    if let Some(z) = dropped {
        recent.clear();
        *base = z;
    }
    for (zxid, r) in kept {
        if recent.len() == RECENT_RECORDS {
            if let Some((z, _)) = recent.pop_front() {
                *base = z;
            }
        }
        recent.push_back((*zxid, Bytes::copy_from_slice(&bytes[r.clone()])));
    }
}

/// Where a segment's good records end, and why.
struct ScanEnd {
    valid_end: usize,
    end: End,
}

/// Whether the segment before `next` holds only txns the snapshot has: true when `next` starts
/// at or before the record that follows the snapshot's zxid. Reads at most the first MiB of `next` (a segment
/// whose first record is bigger is simply read in full, never skipped).
pub(super) fn covered(snap_zxid: Option<i64>, next: &Path) -> io::Result<bool> {
    use std::io::Read;
    let Some(z) = snap_zxid else {
        return Ok(false);
    };
    let mut head = Vec::with_capacity(1 << 20);
    File::open(next)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut head))
        .map_err(at(next))?;
    if !header_ok(&head) {
        return Ok(false);
    }
    Ok(scan(&head, None)
        .txns
        .first()
        .is_some_and(|t| t.zxid <= z || follows(z, t.zxid)))
}

/// Zeroes a torn tail: from `valid_end` up to the first block that is already all zeros (the
/// pre-filled space no write reached). Durable before returning.
fn zero_torn_tail(path: &Path, bytes: &[u8], valid_end: usize) -> io::Result<u64> {
    let first_block = valid_end - valid_end % BLOCK + BLOCK;
    let mut stop = first_block.min(bytes.len());
    while stop < bytes.len() {
        let block = &bytes[stop..(stop + BLOCK).min(bytes.len())];
        if block.iter().all(|&b| b == 0) {
            break;
        }
        stop += BLOCK;
    }
    if stop <= valid_end {
        return Ok(0);
    }
    let f: File = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(at(path))?;
    f.write_all_at(&vec![0u8; stop - valid_end], valid_end as u64)
        .and_then(|_| f.sync_data())
        .map_err(at(path))?;
    debug_assert!(valid_end >= HEADER_LEN);
    Ok((stop - valid_end) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::{header, TailBuffer};
    use crate::txn::{Txn, TxnOp};
    use bytes::Bytes;

    fn create(zxid: i64) -> Txn {
        Txn {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 0,
            op: TxnOp::Create {
                opcode: 1,
                path: format!("/n{zxid}"),
                data: Some(crate::txn::Data::from(&b"v"[..])),
                acl: vec![],
                ephemeral_owner: 0,
                parent_cversion: zxid as i32,
            },
        }
    }

    fn write_segment(dir: &Path, seq: u64, txns: &[Txn]) -> PathBuf {
        let mut file = header();
        file.resize(4 * BLOCK, 0);
        let mut tail = TailBuffer::new(HEADER_LEN as u64, &[]);
        for t in txns {
            tail.push(t);
        }
        let (at, b) = tail.pending();
        file.resize(file.len().max(at as usize + b.len() + BLOCK), 0);
        file[at as usize..at as usize + b.len()].copy_from_slice(&b);
        let p = dir.join(crate::storage::log::segment_name(seq));
        fs::write(&p, file).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-recover-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn encoded(t: &Txn) -> Bytes {
        let mut b = bytes::BytesMut::new();
        crate::storage::codec::encode_txn(t, &mut b);
        b.freeze()
    }

    fn write_snapshot(snaps: &Path, upto: i64) {
        fs::create_dir_all(snaps).unwrap();
        let mut t = DataTree::new();
        for z in 1..=upto {
            t.apply(&create(z));
        }
        let mut out = Vec::new();
        let mut c = crate::storage::snapshot::Cursor::new();
        c.begin(&t, &mut out);
        while !c.step(&t, 100, &mut out) {}
        fs::write(
            snaps.join(crate::storage::snapshot::snapshot_name(upto)),
            out,
        )
        .unwrap();
    }

    fn recent_zxids(r: &Recovered) -> Vec<i64> {
        r.recent.iter().map(|(z, _)| *z).collect()
    }

    #[test]
    fn recent_records_are_the_newest_after_the_snapshot_as_logged() {
        let d = tmp("recent");
        let snaps = d.join("snapshots");
        // Empty store.
        let r = recover(&d, &snaps).unwrap();
        assert!(r.recent.is_empty());
        assert_eq!((r.recent_base, r.last_zxid), (0, 0));
        // Two segments, no snapshot: every record, byte for byte as encode_txn made it.
        write_segment(&d, 1, &(1..=3).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(4..=5).map(create).collect::<Vec<_>>());
        let r = recover(&d, &snaps).unwrap();
        assert_eq!(recent_zxids(&r), vec![1, 2, 3, 4, 5]);
        assert_eq!(r.recent_base, 0);
        for (z, b) in &r.recent {
            assert_eq!(b, &encoded(&create(*z)));
        }
        // A snapshot at 4: only what follows it.
        write_snapshot(&snaps, 4);
        let r = recover(&d, &snaps).unwrap();
        assert_eq!(recent_zxids(&r), vec![5]);
        assert_eq!(r.recent_base, 4);
        // A snapshot at the last record: nothing recent, the base is the last zxid.
        write_snapshot(&snaps, 5);
        let r = recover(&d, &snaps).unwrap();
        assert!(r.recent.is_empty());
        assert_eq!((r.recent_base, r.last_zxid), (5, 5));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn recent_records_are_bounded_across_segments() {
        let n = RECENT_RECORDS as i64;
        // One segment holding more than the bound, then a short one.
        let d = tmp("recent-big");
        let snaps = d.join("snapshots");
        write_segment(&d, 1, &(1..=n + 200).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(n + 201..=n + 250).map(create).collect::<Vec<_>>());
        let r = recover(&d, &snaps).unwrap();
        assert_eq!(recent_zxids(&r), (251..=n + 250).collect::<Vec<_>>());
        assert_eq!(r.recent_base, 250);
        assert_eq!(r.recent[0].1, encoded(&create(251)));
        fs::remove_dir_all(&d).unwrap();
        // The bound falls inside the first of three segments, then a snapshot inside it.
        let d = tmp("recent-three");
        let snaps = d.join("snapshots");
        write_segment(&d, 1, &(1..=100).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(101..=300).map(create).collect::<Vec<_>>());
        write_segment(&d, 3, &(301..=n + 150).map(create).collect::<Vec<_>>());
        let r = recover(&d, &snaps).unwrap();
        assert_eq!(recent_zxids(&r), (151..=n + 150).collect::<Vec<_>>());
        assert_eq!(r.recent_base, 150);
        write_snapshot(&snaps, 200);
        let r = recover(&d, &snaps).unwrap();
        assert_eq!(recent_zxids(&r), (201..=n + 150).collect::<Vec<_>>());
        assert_eq!(r.recent_base, 200);
        assert_eq!(r.last_zxid, n + 150);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replays_segments_in_order_and_finds_the_tail() {
        let d = tmp("order");
        write_segment(&d, 1, &(1..=3).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(4..=5).map(create).collect::<Vec<_>>());
        let r = recover(&d, &d.join("snapshots")).unwrap();
        assert_eq!(r.last_zxid, 5);
        assert!(r.tree.get("/n4").is_some());
        let t = r.tail.unwrap();
        assert_eq!(t.seq, 2);
        assert_eq!(r.next_seq, 3);
        assert_eq!(t.partial.len() as u64, t.end % BLOCK as u64);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_zeroed_and_kept_out() {
        let d = tmp("torn");
        let p = write_segment(&d, 1, &(1..=3).map(create).collect::<Vec<_>>());
        let mut bytes = fs::read(&p).unwrap();
        let good = scan(&bytes, None);
        let cut = good.valid_end - 3;
        bytes[cut] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        let r = recover(&d, &d.join("snapshots")).unwrap();
        assert_eq!(r.last_zxid, 2);
        assert!(r.stats.torn.is_some());
        // The torn record is gone from disk: a second recovery sees a clean end.
        let again = recover(&d, &d.join("snapshots")).unwrap();
        assert_eq!(again.last_zxid, 2);
        assert!(again.stats.torn.is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damage_before_newer_segments_refuses_to_start() {
        let d = tmp("middle");
        let p = write_segment(&d, 1, &(1..=3).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(4..=5).map(create).collect::<Vec<_>>());
        let mut bytes = fs::read(&p).unwrap();
        bytes[HEADER_LEN + 20] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert!(recover(&d, &d.join("snapshots")).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn segments_the_snapshot_covers_are_not_read() {
        let d = tmp("skip");
        let snaps = d.join("snapshots");
        fs::create_dir_all(&snaps).unwrap();
        let first = write_segment(&d, 1, &(1..=3).map(create).collect::<Vec<_>>());
        write_segment(&d, 2, &(4..=5).map(create).collect::<Vec<_>>());
        write_segment(&d, 3, &(6..=7).map(create).collect::<Vec<_>>());
        // A snapshot taken at zxid 4: segment 1 is wholly inside it, segment 2 is not.
        let mut t = DataTree::new();
        for z in 1..=4 {
            t.apply(&create(z));
        }
        let mut out = Vec::new();
        let mut c = crate::storage::snapshot::Cursor::new();
        c.begin(&t, &mut out);
        while !c.step(&t, 100, &mut out) {}
        fs::write(snaps.join(crate::storage::snapshot::snapshot_name(4)), out).unwrap();
        // Damage segment 1's records: recovery must not need them.
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER_LEN + 20] ^= 1;
        fs::write(&first, &bytes).unwrap();

        let r = recover(&d, &snaps).unwrap();
        assert_eq!(r.stats.segments_skipped, 1);
        assert_eq!(r.stats.segments, 2);
        assert_eq!(r.last_zxid, 7);
        let mut all = DataTree::new();
        for z in 1..=7 {
            all.apply(&create(z));
        }
        assert_eq!(r.tree.digest(), all.digest());
        fs::remove_dir_all(&d).unwrap();
    }
}
