//! The write-ahead log writer, owned by the write core: batched O_DIRECT writes through
//! glommio DMA files, one aligned write plus one fdatasync per flush (group commit).
//!
//! Segments are zero-filled ahead of the write position by a background task, so a flush
//! never extends the file (measured here: ~0.15 ms for a 4 KiB write + fdatasync into a
//! zero-filled file, ~4 ms when the write extends it). The next segment is created and
//! zero-filled while the current one still has room, so rolling over is a pointer swap.
//! Byte formats: `storage::log`.
//!
//! A full disk (docs/decisions.md, "A full disk"): preallocation is only an optimisation, so it
//! never fails a flush. It takes at most half of the free space (`fill_room`), and when it
//! cannot get any or failed, it holds off for `PREALLOC_RETRY` and the flush writes past the
//! zero-filled space instead, extending the file (slower, still correct: recovery stops at the
//! file's end, `storage::log::End::Eof`). A segment that cannot be created in time is not
//! waited for: the current one grows past `SEGMENT_BYTES`. A flush that fails leaves the tail
//! buffer as it was, so the caller may retry it: the retry rewrites the same bytes at the
//! same offset, whatever part of the failed write reached the file.
//!
//! Invariant: the writer writes only below `zeroed_to` or, when no filler runs, past it (and
//! then moves `zeroed_to` to its end); the filler writes only at or above `zeroed_to`. So a
//! filler never zeroes a record.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{Directory, DmaBuffer, DmaFile, OpenOptions};
use tracing::{info, warn};

use crate::storage::log::{header, segment_name, TailBuffer, BLOCK, HEADER_LEN};
use crate::storage::recover::Tail;

/// Segment size before rolling over (ZooKeeper preallocates 64 MiB too).
pub use crate::limits::SEGMENT_BYTES;
/// Zero-fill step; the filler starts when less than `FILL_LOW_WATER` is zeroed ahead of the
/// writer. At ~200 MB/s of zero-filling (this VM) a step takes ~40 ms, during which the writer
/// may use the 6 MiB still ahead: sustained log writes up to ~150 MB/s never wait.
const FILL_CHUNK: u64 = 8 << 20;
const FILL_LOW_WATER: u64 = 6 << 20;
/// Size of one zero-filling write.
const ZERO_WRITE: usize = 1 << 20;
// A full batch fits in what is zeroed ahead, so only a single outsized record waits for the filler.
const _: () = assert!(crate::limits::BATCH_BYTES as u64 <= FILL_LOW_WATER);
const _: () = assert!(SEGMENT_BYTES.is_multiple_of(FILL_CHUNK));
/// Smallest zero-fill worth starting; with less room than this the writer extends the file.
const FILL_MIN: u64 = 1 << 20;
/// After preallocation failed or found too little free space, the writer extends the file for
/// this long before preallocation is tried again.
const PREALLOC_RETRY: Duration = Duration::from_secs(1);

const _: () = assert!(FILL_MIN <= FILL_CHUNK && FILL_LOW_WATER < FILL_CHUNK);
const _: () = assert!(FILL_MIN.is_multiple_of(BLOCK as u64) && ZERO_WRITE.is_multiple_of(BLOCK));

fn err(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes all of `buf` at `at`; a short write (what a full file system gives) is an error.
async fn write_all_at(file: &DmaFile, buf: DmaBuffer, at: u64) -> io::Result<()> {
    let len = buf.len();
    let n = file.write_at(buf, at).await.map_err(err)?;
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {len} bytes at offset {at}"),
        ));
    }
    Ok(())
}

/// Bytes available to this process on the file system holding `dir` (None if unknown).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// How much of `want` bytes preallocation may zero-fill now: at most half of the free space
/// (the rest stays for the records themselves and for snapshots), whole `FILL_MIN` steps, 0
/// when that is not even one step.
fn fill_room(dir: &Path, want: u64) -> u64 {
    let free = free_bytes(dir).unwrap_or(u64::MAX);
    let room = want.min(free / 2);
    if room < FILL_MIN.min(want) {
        0
    } else if room == want {
        want
    } else {
        room - room % FILL_MIN
    }
}

/// Writes zeros over `from..to`, moving `reached` forward after each write, then syncs.
async fn zero_fill(file: &DmaFile, from: u64, to: u64, reached: &Cell<u64>) -> io::Result<()> {
    debug_assert!(from.is_multiple_of(BLOCK as u64) && to.is_multiple_of(BLOCK as u64));
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(ZERO_WRITE);
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().fill(0);
        write_all_at(file, buf, at).await?;
        at += n as u64;
        reached.set(at);
    }
    file.fdatasync().await.map_err(err)
}

/// Counts a background task as running from `start` until it is dropped (the task ends, or
/// is dropped with its executor).
struct Running(Rc<Cell<usize>>);

impl Running {
    fn start(count: &Rc<Cell<usize>>) -> Running {
        count.set(count.get() + 1);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// A segment file and how far it is zero-filled.
struct Segment {
    seq: u64,
    file: Rc<DmaFile>,
    zeroed_to: Rc<Cell<u64>>,
    filling: Rc<Cell<bool>>,
}

/// Creates segment `seq`: header plus as much of the first zero-filled chunk as the free space
/// allows, durable, directory synced. On failure the file is removed again.
async fn create_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
    let path = dir.join(segment_name(seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&path)
        .await
        .map_err(err)?;
    let zeroed_to = Cell::new(HEADER_LEN as u64);
    let made = async {
        let h = header();
        let mut buf = file.alloc_dma_buffer(h.len());
        buf.as_bytes_mut().copy_from_slice(&h);
        write_all_at(&file, buf, 0).await?;
        let room = fill_room(dir, FILL_CHUNK - HEADER_LEN as u64);
        zero_fill(
            &file,
            HEADER_LEN as u64,
            HEADER_LEN as u64 + room,
            &zeroed_to,
        )
        .await?;
        let d = Directory::open(dir).await.map_err(err)?;
        d.sync().await.map_err(err)
    }
    .await;
    if let Err(e) = made {
        // A half-made segment holds space and, with a bad header, would be dropped by
        // recovery anyway: remove it now.
        let _ = file.close().await;
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(Segment {
        seq,
        file: Rc::new(file),
        zeroed_to: Rc::new(zeroed_to),
        filling: Rc::new(Cell::new(false)),
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WalStats {
    pub flushes: u64,
    pub fsyncs: u64,
    pub fsync_time: Duration,
    pub bytes_written: u64,
    /// Flushes that had to wait for the zero-filler (should stay 0).
    pub fill_stalls: u64,
    pub last_fsync: Duration,
    /// Flushes whose write or fdatasync failed (the batch stayed unacknowledged).
    pub failed_flushes: u64,
    /// The last flush failed: the log is not taking writes until a retry succeeds.
    pub failing: bool,
    /// Flushes that wrote past the zero-filled space, extending the file (space was short).
    pub unfilled_writes: u64,
    /// Zero-fills and segment creations that failed (the log carried on without them).
    pub prealloc_failures: u64,
}

pub struct Wal {
    dir: PathBuf,
    current: Segment,
    next: Option<Segment>,
    preparing_next: Rc<Cell<bool>>,
    prepared: Rc<RefCell<Option<Segment>>>,
    /// No preallocation before this instant (it failed, or space was short).
    prealloc_held_until: Rc<Cell<Option<Instant>>>,
    prealloc_failures: Rc<Cell<u64>>,
    /// Background tasks (zero-fills, next-segment creations) still running: `close` waits for
    /// them, so none touches the files once it returns.
    tasks: Rc<Cell<usize>>,
    tail: TailBuffer,
    force_sync: bool,
    stats: WalStats,
    /// Records appended since the last flush, and how many each flush took (group commit).
    unflushed_records: u64,
    batch_records: crate::metrics::Window,
    /// Each fdatasync's duration, microseconds (`fsynctime`'s quantile in /metrics).
    fsync_times: crate::metrics::Window,
}

impl Wal {
    /// Opens the log for appending: continues the recovered tail segment, or starts segment
    /// `next_seq` in an empty log.
    pub async fn open(
        dir: &Path,
        tail: Option<Tail>,
        next_seq: u64,
        force_sync: bool,
    ) -> io::Result<Wal> {
        let (current, buf) = match tail {
            Some(t) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .dma_open(&t.path)
                    .await
                    .map_err(err)?;
                (
                    Segment {
                        seq: t.seq,
                        file: Rc::new(file),
                        zeroed_to: Rc::new(Cell::new(t.zeroed_to)),
                        filling: Rc::new(Cell::new(false)),
                    },
                    TailBuffer::new(t.end, &t.partial),
                )
            }
            None => (
                create_segment(dir, next_seq).await?,
                TailBuffer::new(HEADER_LEN as u64, &[]),
            ),
        };
        info!(
            segment = current.seq,
            offset = buf.end(),
            force_sync,
            "transaction log open"
        );
        Ok(Wal {
            dir: dir.to_path_buf(),
            current,
            next: None,
            preparing_next: Rc::new(Cell::new(false)),
            prepared: Rc::new(RefCell::new(None)),
            prealloc_held_until: Rc::new(Cell::new(None)),
            prealloc_failures: Rc::new(Cell::new(0)),
            tasks: Rc::new(Cell::new(0)),
            tail: buf,
            force_sync,
            stats: WalStats::default(),
            unflushed_records: 0,
            batch_records: crate::metrics::Window::new(std::time::Instant::now()),
            fsync_times: crate::metrics::Window::new(std::time::Instant::now()),
        })
    }

    pub fn stats(&self) -> WalStats {
        WalStats {
            prealloc_failures: self.prealloc_failures.get(),
            ..self.stats
        }
    }

    /// Records per flush over recent flushes, for /metrics.
    pub fn batch_records(&mut self) -> crate::metrics::Summary {
        self.batch_records.sample(std::time::Instant::now())
    }

    /// Recent fdatasync durations (µs) and every one's count and sum.
    pub fn fsync_times(&mut self) -> crate::metrics::Summary {
        self.fsync_times.sample(std::time::Instant::now())
    }

    /// Appends a record whose txn is already encoded (`storage::codec::encode_txn`).
    pub fn append_raw(&mut self, zxid: i64, txn: &[u8]) {
        self.tail.push_raw(zxid, txn);
        self.unflushed_records += 1;
    }

    /// Bytes appended and not yet flushed (whole blocks, as the next flush writes them).
    pub fn pending_bytes(&self) -> usize {
        self.tail.pending_span().1
    }

    /// Makes everything appended so far durable: one aligned write, one fdatasync. On an error
    /// nothing appended counts as durable, and calling `flush` again retries the same write.
    pub async fn flush(&mut self) -> io::Result<()> {
        let (at, len) = self.tail.pending_span();
        if len == 0 {
            return Ok(());
        }
        if let Err(e) = self.write_pending(at, len).await {
            self.stats.failed_flushes += 1;
            self.stats.failing = true;
            return Err(e);
        }
        self.stats.failing = false;
        self.stats.flushes += 1;
        self.stats.bytes_written += len as u64;
        self.batch_records.record(self.unflushed_records);
        self.unflushed_records = 0;
        self.tail.flushed();
        let end = self.tail.end();
        self.fill_ahead(end + FILL_LOW_WATER);
        if end >= SEGMENT_BYTES / 2 {
            self.prepare_next();
        }
        if end >= SEGMENT_BYTES {
            self.roll();
        }
        Ok(())
    }

    async fn write_pending(&mut self, at: u64, len: usize) -> io::Result<()> {
        let write_end = at + len as u64;
        // Never write into space a running filler has not reached (it would zero our records).
        let mut stalled = false;
        let mut extend = false;
        while write_end > self.current.zeroed_to.get() {
            if !self.current.filling.get() && !self.fill_ahead(write_end) {
                // No zero-filled space and none coming (space is short): extend the file.
                extend = true;
                break;
            }
            stalled = true;
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        if stalled {
            self.stats.fill_stalls += 1;
        }
        let mut buf = self.current.file.alloc_dma_buffer(len);
        self.tail.copy_pending(buf.as_bytes_mut());
        write_all_at(&self.current.file, buf, at).await?;
        if extend {
            // No filler runs (checked above, and none started since): the file now ends here.
            self.stats.unfilled_writes += 1;
            self.current.zeroed_to.set(write_end);
        }
        if self.force_sync {
            let t = Instant::now();
            self.current.file.fdatasync().await.map_err(err)?;
            let took = t.elapsed();
            self.stats.fsyncs += 1;
            self.stats.fsync_time += took;
            self.fsync_times.record(took.as_micros() as u64);
            self.stats.last_fsync = took;
        }
        Ok(())
    }

    /// Whether preallocation is held off (it failed or space was short a moment ago).
    fn prealloc_held(&self) -> bool {
        match self.prealloc_held_until.get() {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                self.prealloc_held_until.set(None);
                false
            }
            None => false,
        }
    }

    /// Starts the background zero-filler if fewer than `need` bytes are zeroed. False when
    /// none runs and `need` is not reached: preallocation is held off or space is short.
    fn fill_ahead(&self, need: u64) -> bool {
        let seg = &self.current;
        if seg.zeroed_to.get() >= need || seg.filling.get() {
            return true;
        }
        if self.prealloc_held() {
            return false;
        }
        let from = seg.zeroed_to.get();
        // O_DIRECT writes must be block-aligned in offset and length: fill whole chunks.
        let to = (need.max(from) + FILL_CHUNK).div_ceil(FILL_CHUNK) * FILL_CHUNK;
        let room = fill_room(&self.dir, to - from);
        if room == 0 {
            self.prealloc_held_until
                .set(Some(Instant::now() + PREALLOC_RETRY));
            return false;
        }
        seg.filling.set(true);
        let (file, zeroed, filling) =
            (seg.file.clone(), seg.zeroed_to.clone(), seg.filling.clone());
        let (held, failures) = (
            self.prealloc_held_until.clone(),
            self.prealloc_failures.clone(),
        );
        let tasks = Running::start(&self.tasks);
        glommio::spawn_local(async move {
            let _running = tasks;
            if let Err(e) = zero_fill(&file, from, from + room, &zeroed).await {
                warn!("zero-filling the transaction log failed (the log extends its file instead): {e}");
                failures.set(failures.get() + 1);
                held.set(Some(Instant::now() + PREALLOC_RETRY));
            }
            filling.set(false);
        })
        .detach();
        true
    }

    /// Creates the next segment in the background while this one still has room.
    fn prepare_next(&mut self) {
        if self.next.is_none() {
            self.next = self.prepared.borrow_mut().take();
        }
        if self.next.is_some() || self.preparing_next.get() || self.prealloc_held() {
            return;
        }
        self.preparing_next.set(true);
        let (dir, seq) = (self.dir.clone(), self.current.seq + 1);
        let (prepared, preparing) = (self.prepared.clone(), self.preparing_next.clone());
        let (held, failures) = (
            self.prealloc_held_until.clone(),
            self.prealloc_failures.clone(),
        );
        let tasks = Running::start(&self.tasks);
        glommio::spawn_local(async move {
            let _running = tasks;
            match create_segment(&dir, seq).await {
                Ok(s) => *prepared.borrow_mut() = Some(s),
                Err(e) => {
                    warn!("creating log segment {seq} failed (will retry): {e}");
                    failures.set(failures.get() + 1);
                    held.set(Some(Instant::now() + PREALLOC_RETRY));
                }
            }
            preparing.set(false);
        })
        .detach();
    }

    /// Stops the log for good: waits until no background task (zero-filler, next-segment
    /// creation) runs any more, then closes every file, so nothing touches the log's files
    /// after it returns (a learner's sync then truncates or replaces them, `storage::learner`).
    /// Records appended and not flushed are dropped: flush first to keep them. A segment
    /// prepared ahead stays on disk as an empty segment after the current one; recovery
    /// continues in it.
    pub async fn close(self) -> io::Result<()> {
        while self.tasks.get() > 0 {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let prepared = self.prepared.borrow_mut().take();
        let segments = [Some(self.current), self.next, prepared];
        let mut result = Ok(());
        for seg in segments.into_iter().flatten() {
            // The tasks held the only other references, and they are done.
            if let Ok(f) = Rc::try_unwrap(seg.file) {
                if let Err(e) = f.close().await {
                    result = result.and(Err(err(e)));
                }
            }
        }
        result
    }

    /// Moves on to the prepared segment. If it is not ready (still being created, or space is
    /// short) the current segment simply grows past `SEGMENT_BYTES`: recovery reads segments
    /// of any length, and the next flush tries again.
    fn roll(&mut self) {
        let Some(next) = self
            .next
            .take()
            .or_else(|| self.prepared.borrow_mut().take())
        else {
            return;
        };
        info!(
            from = self.current.seq,
            to = next.seq,
            "rolling transaction log"
        );
        self.current = next;
        self.tail = TailBuffer::new(HEADER_LEN as u64, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_touches_the_files_after_close() {
        let dir = std::env::temp_dir().join(format!("corral-wal-close-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .name("wal-close")
            // Small: other executors share the locked-memory limit.
            .io_memory(64 << 10)
            .spawn(move || async move {
                let mut wal = Wal::open(&d, None, 1, false).await.unwrap();
                // Past half a segment in one flush: the filler is zeroing ahead and the next
                // segment is being created when the flush returns.
                let record = vec![7u8; 1 << 20];
                for z in 1..=33 {
                    wal.append_raw(z, &record);
                }
                wal.flush().await.unwrap();
                let tasks = wal.tasks.clone();
                assert!(tasks.get() > 0, "the flush left no background work");
                wal.close().await.unwrap();
                assert_eq!(tasks.get(), 0);
                let closed = sizes(&d);
                // Background work that outlived close would go on growing the files.
                glommio::timer::sleep(Duration::from_millis(500)).await;
                assert_eq!(sizes(&d), closed);
                // The prepared segment was finished, not cut short: header and zero-fill.
                let next = closed.iter().find(|(n, _)| *n == segment_name(2));
                assert!(
                    next.is_some_and(|(_, len)| *len > HEADER_LEN as u64),
                    "{closed:?}"
                );
            })
            .unwrap()
            .join()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
