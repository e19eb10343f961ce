//! Taking snapshots without stopping writes. The write core walks its tree a chunk at a time
//! between batches (`storage::snapshot::Cursor`) and hands each chunk to a writer thread, which
//! writes the file, makes it durable, renames it into place and then applies the retention
//! rules. Nothing here blocks the write core: a full hand-off queue just postpones the next
//! chunk to the next turn of the core's loop.
//!
//! Figures for `mntr`/`srvr`: the writer thread counts finished snapshots and times them in
//! `STATS` (atomics: the thread writes, a four-letter word reads); what is on disk is listed when
//! a four-letter word asks (`on_disk`), since `mntr` is rare and a listing is cheap.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use tracing::{info, warn};

use crate::admin::probe::dir_size_bytes;
use crate::storage::log::HEADER_LEN;
use crate::storage::recover::{segments, snapshots};
use crate::storage::snapshot::{snapshot_name, Cursor};
use crate::tree::DataTree;

/// Nodes serialized per step of the walk (a step runs between two batches of the write core).
pub const NODES_PER_STEP: usize = 2000;
/// Chunks waiting for the writer thread before the walk pauses.
const QUEUE: usize = 8;

pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// Snapshots taken by this process. Process-wide: a process runs one server (`server::run`
/// blocks until it stops), and a static keeps the write core's code out of the bookkeeping.
pub struct Stats {
    /// Snapshots written, synced and renamed into place.
    pub taken: AtomicU64,
    /// Snapshots that failed (their unfinished `.tmp` file is removed; the write core tries
    /// again later).
    pub failed: AtomicU64,
    /// The last one taken: microseconds from the start of its walk to its directory sync.
    pub last_duration_us: AtomicU64,
    /// Writer threads running (writing, renaming, purging).
    pub writers: AtomicU64,
}

/// Each snapshot's duration (µs), for /metrics' `snapshottime` quantile; written by the
/// snapshot threads, read at a scrape.
pub static TIMES: std::sync::LazyLock<std::sync::Mutex<crate::metrics::Window>> =
    std::sync::LazyLock::new(Default::default);

pub static STATS: Stats = Stats {
    taken: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    last_duration_us: AtomicU64::new(0),
    writers: AtomicU64::new(0),
};

/// The snapshot directory as a four-letter word reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// Complete snapshot files (`snap-<zxid>.snap`; an unfinished `.tmp` does not count).
    pub count: u64,
    /// The newest snapshot's zxid, -1 when there is none.
    pub newest_zxid: i64,
    pub newest_bytes: u64,
    /// Everything in the directory, `.tmp` files included (what the disk holds).
    pub dir_bytes: u64,
}

/// Lists the snapshot directory: one `readdir` and a `stat` per file. Called per `mntr`/`srvr`
/// only, off the request path; retention keeps the directory small (autopurge) or the operator
/// does.
pub fn on_disk(snap_dir: &Path) -> OnDisk {
    let snaps = snapshots(snap_dir).unwrap_or_default();
    let newest = snaps.first();
    OnDisk {
        count: snaps.len() as u64,
        newest_zxid: newest.map_or(-1, |(z, _)| *z),
        newest_bytes: newest
            .and_then(|(_, p)| fs::metadata(p).ok())
            .map_or(0, |m| m.len()),
        dir_bytes: dir_size_bytes(snap_dir),
    }
}

/// A snapshot being taken.
pub struct Job {
    cursor: Cursor,
    pending: Option<Vec<u8>>,
    tx: Option<SyncSender<Vec<u8>>>,
    pub zxid: i64,
    /// Set by `abort`: the writer drops its file and purges nothing.
    aborted: Arc<AtomicBool>,
}

/// Counts a writer thread from before it starts until it ends, however it ends.
struct Running;

impl Running {
    fn new() -> Running {
        STATS.writers.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        STATS.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a snapshot writer thread is still at work (a learner's log must not be cut or
/// replaced under it: it might rename a snapshot into place or purge segments).
pub fn writers_running() -> bool {
    STATS.writers.load(Ordering::SeqCst) > 0
}

pub struct Retention {
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    pub keep: usize,
    pub purge: bool,
}

impl Job {
    /// Starts a snapshot of `tree` as of its last zxid.
    pub fn start(tree: &DataTree, retention: Retention) -> io::Result<Job> {
        fs::create_dir_all(&retention.snap_dir)?;
        let zxid = tree.last_zxid();
        let began = Instant::now();
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let aborted = Arc::new(AtomicBool::new(false));
        let abort = aborted.clone();
        let running = Running::new();
        thread::Builder::new()
            .name("corral-snapshot".into())
            .spawn(move || {
                let _running = running;
                if let Err(e) = write_file(zxid, rx, &retention, began, &abort) {
                    if abort.load(Ordering::SeqCst) {
                        info!("snapshot {zxid:#x} abandoned");
                        return;
                    }
                    // The write core sees the count move and tries again later.
                    STATS.failed.fetch_add(1, Ordering::Relaxed);
                    warn!("snapshot {zxid:#x} failed: {e}");
                    return;
                }
                if abort.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = retain(&retention) {
                    warn!("autopurge after snapshot {zxid:#x} failed: {e}");
                }
            })?;
        let mut cursor = Cursor::new();
        let mut first = Vec::new();
        cursor.begin(tree, &mut first);
        Ok(Job {
            cursor,
            pending: Some(first),
            tx: Some(tx),
            zxid,
            aborted,
        })
    }

    /// Abandons the snapshot: its writer removes the unfinished file and purges nothing
    /// (`writers_running` says when it is done).
    pub fn abort(self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    /// One step: hand over the pending chunk if the writer has room, then walk further. True
    /// when the whole snapshot has been handed over.
    pub fn step(&mut self, tree: &DataTree) -> bool {
        let Some(tx) = &self.tx else {
            return true;
        };
        if let Some(chunk) = self.pending.take() {
            match tx.try_send(chunk) {
                Ok(()) => {}
                Err(TrySendError::Full(chunk)) => {
                    self.pending = Some(chunk);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.tx = None;
                    return true;
                }
            }
        }
        let mut chunk = Vec::new();
        let done = self.cursor.step(tree, NODES_PER_STEP, &mut chunk);
        self.pending = Some(chunk);
        if done {
            // Hand the last chunk over (blocking at most on a few queued chunks), then close.
            if let (Some(tx), Some(chunk)) = (self.tx.take(), self.pending.take()) {
                let _ = tx.send(chunk);
            }
            return true;
        }
        false
    }
}

/// Writes the snapshot and renames it into place. On failure (a full disk, usually) the
/// unfinished file is removed, so a failed snapshot does not keep holding the space it got.
fn write_file(
    zxid: i64,
    rx: Receiver<Vec<u8>>,
    r: &Retention,
    began: Instant,
    aborted: &AtomicBool,
) -> io::Result<()> {
    let name = snapshot_name(zxid);
    let tmp = r.snap_dir.join(format!("{name}.tmp"));
    let abandoned = || io::Error::other("abandoned");
    let written = (|| {
        let mut f = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        for chunk in rx {
            if aborted.load(Ordering::SeqCst) {
                return Err(abandoned());
            }
            f.write_all(&chunk)?;
        }
        if aborted.load(Ordering::SeqCst) {
            return Err(abandoned());
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, r.snap_dir.join(&name))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&r.snap_dir)?.sync_all()?;
    let took = began.elapsed();
    STATS
        .last_duration_us
        .store(took.as_micros() as u64, Ordering::Relaxed);
    STATS.taken.fetch_add(1, Ordering::Relaxed);
    TIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(took.as_micros() as u64);
    info!(
        zxid = format!("{zxid:#x}"),
        ms = took.as_millis() as u64,
        "snapshot written"
    );
    Ok(())
}

/// The zxid of a segment's first record, if it has one.
fn first_zxid(path: &Path) -> Option<i64> {
    use std::io::Read;
    let mut b = vec![0u8; HEADER_LEN + 16];
    File::open(path).ok()?.read_exact(&mut b).ok()?;
    let len = u32::from_be_bytes(b[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap());
    (len != 0).then(|| i64::from_be_bytes(b[HEADER_LEN + 8..HEADER_LEN + 16].try_into().unwrap()))
}

/// autopurge: keep the newest `keep` snapshots (always), and when purging is on, delete log
/// segments holding only records the oldest kept snapshot already covers.
fn retain(r: &Retention) -> io::Result<()> {
    if !r.purge {
        return Ok(());
    }
    let snaps = snapshots(&r.snap_dir)?;
    for (_, p) in snaps.iter().skip(r.keep) {
        fs::remove_file(p)?;
    }
    let Some(oldest) = snaps.iter().take(r.keep).map(|(z, _)| *z).min() else {
        return Ok(());
    };
    let segs = segments(&r.log_dir)?;
    // Segment i is obsolete when segment i+1 starts at or before the snapshot's next zxid.
    for pair in segs.windows(2) {
        match first_zxid(&pair[1].1) {
            Some(z) if z <= oldest + 1 => fs::remove_file(&pair[0].1)?,
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::{header, segment_name, TailBuffer};
    use crate::txn::{Txn, TxnOp};

    fn segment(dir: &Path, seq: u64, first_zxid: i64) {
        let mut file = header();
        let mut tail = TailBuffer::new(HEADER_LEN as u64, &[]);
        tail.push(&Txn {
            session_id: 0,
            cxid: 0,
            zxid: first_zxid,
            time_ms: 0,
            op: TxnOp::Check { path: "/".into() },
        });
        file.extend(tail.pending().1);
        fs::write(dir.join(segment_name(seq)), file).unwrap();
    }

    #[test]
    fn autopurge_keeps_snapshots_and_the_log_they_need() {
        let d = std::env::temp_dir().join(format!("corral-retain-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let (snap_dir, log_dir) = (d.join("snapshots"), d.join("wal"));
        fs::create_dir_all(&snap_dir).unwrap();
        fs::create_dir_all(&log_dir).unwrap();
        for z in [150, 160, 170, 180] {
            fs::write(snap_dir.join(snapshot_name(z)), b"x").unwrap();
        }
        segment(&log_dir, 1, 1);
        segment(&log_dir, 2, 100);
        segment(&log_dir, 3, 200);
        let r = Retention {
            snap_dir: snap_dir.clone(),
            log_dir: log_dir.clone(),
            keep: 3,
            purge: true,
        };
        retain(&r).unwrap();
        let snaps: Vec<i64> = snapshots(&snap_dir).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(snaps, vec![180, 170, 160]);
        let segs: Vec<u64> = segments(&log_dir).unwrap().iter().map(|s| s.0).collect();
        // Segment 1 holds only zxids below 161 (segment 2 starts at 100); segment 2 is still
        // needed: records 100..199 include 161 onwards.
        assert_eq!(segs, vec![2, 3]);
        // Without purging nothing is deleted.
        fs::write(snap_dir.join(snapshot_name(100)), b"x").unwrap();
        retain(&Retention { purge: false, ..r }).unwrap();
        assert_eq!(snapshots(&snap_dir).unwrap().len(), 4);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn on_disk_counts_complete_snapshots_and_all_bytes() {
        let d = std::env::temp_dir().join(format!("corral-ondisk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let none = on_disk(&d);
        assert_eq!(
            none,
            OnDisk {
                count: 0,
                newest_zxid: -1,
                newest_bytes: 0,
                dir_bytes: 0
            }
        );
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(snapshot_name(0x10)), b"12345").unwrap();
        fs::write(d.join(snapshot_name(0x20)), b"123").unwrap();
        // A snapshot being written: on disk, but not a snapshot yet.
        fs::write(d.join(format!("{}.tmp", snapshot_name(0x30))), b"1234567").unwrap();
        assert_eq!(
            on_disk(&d),
            OnDisk {
                count: 2,
                newest_zxid: 0x20,
                newest_bytes: 3,
                dir_bytes: 15
            }
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
