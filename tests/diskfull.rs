//! A full disk: the data directory sits on a small tmpfs that a filler file fills to the brim
//! while writes run. The server must stay up, answer no write it cannot make durable (the write
//! in the failed log flush waits; later ones are refused with SYSTEMERROR), keep serving reads
//! and resume writing once the filler is deleted; after kill -9 every acknowledged write is
//! there and no refused one is. docs/decisions.md, "A full disk". In an ensemble, a leader
//! whose disk is full refuses what its followers forward, in order, and resumes with room.
//!
//! Needs root (mount). Against Apache ZooKeeper (`CORRAL_TEST_TARGET=zookeeper`) the test returns
//! early: ZooKeeper stops serving when its log cannot be written, which is what corral avoids.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::raw::RawConn;
use common::*;

const SYSTEM_ERROR: i32 = -1;
const NO_NODE: i32 = -101;
const VALUE_BYTES: usize = 100 * 1024;

/// A tmpfs mounted for the test, unmounted (lazily, so a straggler cannot keep it) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size_mib: u32) -> Tmpfs {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("corral-diskfull-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs at {}: {} (this test needs root)",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes `path` until the file system has no room left, then gives `leave` bytes back;
/// returns the filler's size.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let mut total = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(n) if n == chunk => total += n as u64,
                Ok(n) => {
                    total += n as u64;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    let total = total.saturating_sub(leave);
    f.set_len(total).unwrap();
    let _ = f.sync_all();
    total
}

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![b'v'; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    v
}

fn mntr_value(mntr: &str, key: &str) -> i64 {
    mntr.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("{key} missing from mntr:\n{mntr}"))
        .trim()
        .parse()
        .unwrap()
}

fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `path` on `c`; the reply, or None when none came within `wait`. A closed
/// connection (a dead server) fails the test with the server's log.
async fn try_create(
    s: &TestServer,
    c: &mut RawConn,
    path: &str,
    i: usize,
    wait: Duration,
) -> Option<i32> {
    let xid = send_create(c, path, i).await;
    match c.recv_timeout(wait).await {
        Ok(r) => {
            assert_eq!(r.xid, xid, "reply out of order");
            Some(r.err)
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => None,
        Err(e) => panic!("creating {path}: {e}; server log:\n{}", s.log_tail(3000)),
    }
}

/// Ten creates under /full while the disk still has room: all must be acknowledged.
async fn writes_before_full(s: &TestServer, writer: &mut RawConn) -> Vec<usize> {
    let mut acked = Vec::new();
    for i in 0..10 {
        let r = try_create(
            s,
            writer,
            &format!("/full/n{i}"),
            i,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(r, Some(0), "write {i} before the disk is full");
        acked.push(i);
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    if is_zookeeper() {
        return;
    }
    // Declared first, dropped last: the server is killed before the unmount.
    let fs = Tmpfs::mount(32);
    timed(240, async {
        let data = fs.dir.join("data");
        let mut s = TestServer::start(
            ServerOpts::new()
                .cfg("dataDir", data.display())
                // Snapshots every 10..20 txns: some are attempted while the disk is full.
                .cfg("snapCount", 20),
        )
        .await;
        let mut writer = s.raw().await;
        let mut other = s.raw().await;
        let mut reader = s.raw().await;
        assert_eq!(writer.create("/full", b"", 0).await.err, 0);
        // Acknowledged writes, by node number.
        let mut acked: Vec<usize> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        acked.extend(writes_before_full(&s, &mut writer).await);

        let filler = fs.dir.join("filler");
        let filled = fill(&filler, 0);
        eprintln!("filler: {filled} bytes");

        // Write until the log runs out of room: the preallocated space is less than the tmpfs.
        let mut pending = None;
        for i in 10..400 {
            match try_create(
                &s,
                &mut writer,
                &format!("/full/n{i}"),
                i,
                Duration::from_secs(5),
            )
            .await
            {
                Some(0) => acked.push(i),
                Some(SYSTEM_ERROR) => refused.push(format!("/full/n{i}")),
                Some(err) => panic!("write {i}: unexpected error {err}"),
                None => {
                    pending = Some(i);
                    break;
                }
            }
        }
        let pending = pending.expect("the log never ran out of room");
        eprintln!("{} writes acknowledged, write {pending} waits", acked.len());
        assert!(s.is_running(), "server died:\n{}", s.log_tail(3000));

        // Other writes are refused at once, before they are logged.
        for k in 0..3 {
            let path = format!("/full/other{k}");
            let r = try_create(&s, &mut other, &path, 1000 + k, Duration::from_secs(5)).await;
            assert_eq!(r, Some(SYSTEM_ERROR), "a write while the disk is full");
            refused.push(path);
        }
        // Reads are served.
        for &i in acked.iter().take(3).chain(acked.last()) {
            let r = reader.get_data(&format!("/full/n{i}"), false).await;
            assert_eq!(r.err, 0);
            assert_eq!(r.dec().buf().unwrap(), value(i));
        }
        // A new session needs the log: it is turned away, the server stays up.
        let fresh =
            tokio::time::timeout(Duration::from_secs(15), RawConn::connect(&s.addr(), 10_000))
                .await;
        assert!(
            matches!(fresh, Ok(Err(_))),
            "a new session while the disk is full was not turned away"
        );
        let mntr = s.four_letter("mntr").await;
        assert!(mntr_value(&mntr, "corral_log_failed_flushes") > 0, "{mntr}");
        assert_eq!(mntr_value(&mntr, "corral_log_failing"), 1, "{mntr}");
        // Snapshots tried meanwhile failed, and left no half-written file behind.
        assert!(mntr_value(&mntr, "corral_snapshot_failed") > 0, "{mntr}");
        let taken_while_full = mntr_value(&mntr, "corral_snapshot_taken");
        let snap_dir = data.join("snapshots");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tmp_files(&snap_dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "unfinished snapshot files stay: {:?}",
                tmp_files(&snap_dir)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(s.is_running(), "server died:\n{}", s.log_tail(3000));

        // Free the space: the waiting write lands and is acknowledged, writing resumes.
        std::fs::remove_file(&filler).unwrap();
        let r = writer
            .recv_timeout(Duration::from_secs(30))
            .await
            .expect("the waiting write's reply");
        assert_eq!(r.err, 0, "the write that waited for space");
        acked.push(pending);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut k = 3;
        loop {
            let path = format!("/full/other{k}");
            match try_create(&s, &mut other, &path, 1000 + k, Duration::from_secs(10)).await {
                Some(0) => break,
                Some(SYSTEM_ERROR) => refused.push(path),
                r => panic!("write after freeing space: {r:?}"),
            }
            assert!(Instant::now() < deadline, "writes did not resume");
            tokio::time::sleep(Duration::from_millis(100)).await;
            k += 1;
        }
        let other_acked = format!("/full/other{k}");
        for i in pending + 1..pending + 30 {
            let r = try_create(
                &s,
                &mut writer,
                &format!("/full/n{i}"),
                i,
                Duration::from_secs(10),
            )
            .await;
            assert_eq!(r, Some(0), "write {i} after the disk was freed");
            acked.push(i);
        }
        let mntr = s.four_letter("mntr").await;
        assert_eq!(mntr_value(&mntr, "corral_log_failing"), 0, "{mntr}");
        // Snapshots succeed again (the tmpfs has room for one of this tree beside the log).
        let deadline = Instant::now() + Duration::from_secs(30);
        while mntr_value(&s.four_letter("mntr").await, "corral_snapshot_taken") == taken_while_full
        {
            assert!(
                Instant::now() < deadline,
                "no snapshot after the disk was freed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // kill -9: everything acknowledged is there, nothing refused is.
        drop((writer, other, reader));
        s.crash_restart().await;
        let mut c = s.raw().await;
        for &i in &acked {
            let r = c.get_data(&format!("/full/n{i}"), false).await;
            assert_eq!(r.err, 0, "acknowledged /full/n{i} lost");
            assert_eq!(r.dec().buf().unwrap(), value(i), "/full/n{i}");
        }
        assert_eq!(c.exists(&other_acked, false).await.err, 0);
        for p in &refused {
            assert_eq!(
                c.exists(p, false).await.err,
                NO_NODE,
                "refused {p} was applied"
            );
        }
        drop(c);
        s.kill9();
    })
    .await;
}

/// A crash while the disk is full: the log had run past its zero-filled space (space was short,
/// so it extended the file) and then failed a write. Recovery on the still full disk keeps every
/// acknowledged write and cuts the failed one's torn record; once space is freed, writing goes
/// on and survives another kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_on_a_full_disk_loses_no_acknowledged_write() {
    if is_zookeeper() {
        return;
    }
    let fs = Tmpfs::mount(32);
    timed(240, async {
        let data = fs.dir.join("data");
        let mut s = TestServer::start(ServerOpts::new().cfg("dataDir", data.display())).await;
        let mut writer = s.raw().await;
        assert_eq!(writer.create("/full", b"", 0).await.err, 0);
        let mut acked: Vec<usize> = Vec::new();
        acked.extend(writes_before_full(&s, &mut writer).await);
        // Leave 1.5 MiB: too little for preallocation, enough for some writes that extend
        // the log's file.
        let filler = fs.dir.join("filler");
        fill(&filler, 3 << 19);
        let mut pending = None;
        for i in 10..400 {
            match try_create(
                &s,
                &mut writer,
                &format!("/full/n{i}"),
                i,
                Duration::from_secs(5),
            )
            .await
            {
                Some(0) => acked.push(i),
                Some(err) => panic!("write {i}: unexpected error {err}"),
                None => {
                    pending = Some(i);
                    break;
                }
            }
        }
        let pending = pending.expect("the log never ran out of room");
        let mntr = s.four_letter("mntr").await;
        assert!(
            mntr_value(&mntr, "corral_log_unfilled_writes") > 0,
            "{mntr}"
        );
        assert_eq!(mntr_value(&mntr, "corral_log_failing"), 1, "{mntr}");
        eprintln!(
            "{} writes acknowledged, write {pending} waits; kill -9",
            acked.len()
        );

        drop(writer);
        s.crash_restart().await;
        // Up on the full disk; the space is freed only now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(s.is_running(), "server died:\n{}", s.log_tail(3000));
        std::fs::remove_file(&filler).unwrap();
        let mut c = s.raw().await;
        for &i in &acked {
            let r = c.get_data(&format!("/full/n{i}"), false).await;
            assert_eq!(r.err, 0, "acknowledged /full/n{i} lost");
            assert_eq!(r.dec().buf().unwrap(), value(i), "/full/n{i}");
        }
        // The write that never got an answer may or may not be there; writing goes on.
        let next = pending + 1;
        for i in next..next + 20 {
            let r = try_create(
                &s,
                &mut c,
                &format!("/full/n{i}"),
                i,
                Duration::from_secs(10),
            )
            .await;
            assert_eq!(r, Some(0), "write {i} after the disk was freed");
            acked.push(i);
        }
        drop(c);
        s.crash_restart().await;
        let mut c = s.raw().await;
        for &i in &acked {
            let r = c.get_data(&format!("/full/n{i}"), false).await;
            assert_eq!(r.err, 0, "acknowledged /full/n{i} lost");
            assert_eq!(r.dec().buf().unwrap(), value(i), "/full/n{i}");
        }
        drop(c);
        s.kill9();
    })
    .await;
}

/// Sends a create of `path` (value `i`) on `c` without waiting; its xid.
async fn send_create(c: &mut RawConn, path: &str, i: usize) -> i32 {
    let body = common::raw::Enc::new()
        .str(path)
        .buf(Some(&value(i)))
        .acls(common::raw::OPEN_ACL)
        .i32(0)
        .finish();
    c.send(common::raw::op::CREATE, &body).await.expect("send")
}

/// A leader whose log disk is full, in a 3-member ensemble: a client of a follower gets an
/// answer to every write (SYSTEMERROR, as the leader's own clients do) instead of waiting
/// forever, in the order it asked, its sync after its refused write; reads go on, and writes
/// resume once the leader's disk has room. Each member's log is on a tmpfs of its own; only the
/// leader's is filled.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_with_a_full_disk_refuses_its_learners_writes_in_order() {
    if is_zookeeper() {
        return;
    }
    let _serial = common::ensemble::serial().await;
    // Declared first, dropped last: the members are killed before the unmounts.
    let disks: Vec<Tmpfs> = (0..3).map(|_| Tmpfs::mount(192)).collect();
    timed(300, async {
        let mut opts = common::ensemble::EnsembleOpts::voters(3);
        for (i, d) in disks.iter().enumerate() {
            opts = opts.member_cfg(i, "dataLogDir", d.dir.join("log").display());
        }
        let ens = common::ensemble::Ensemble::start(opts).await;
        let leader = ens.wait_leader(Duration::from_secs(60)).await;
        let follower = (leader + 1) % 3;
        let mut c = RawConn::connect(&ens.addr(follower), 30_000)
            .await
            .expect("connect to a follower");
        assert_eq!(c.create("/full", b"", 0).await.err, 0);

        // Only the leader's disk fills. Its log still has the zero-filled room it allocated
        // ahead: write until that runs out too and the leader refuses.
        let filled = fill(&disks[leader].dir.join("filler"), 0);
        eprintln!("leader {leader}: filler {filled} bytes");
        let mut refused_at = None;
        for i in 0..1500 {
            let xid = send_create(&mut c, &format!("/full/n{i}"), i).await;
            let r = c
                .recv_timeout(Duration::from_secs(20))
                .await
                .unwrap_or_else(|e| {
                    panic!("write {i} through a follower: {e}\n{}", ens.log_tails())
                });
            assert_eq!(r.xid, xid, "reply out of order");
            match r.err {
                0 => {}
                SYSTEM_ERROR => {
                    refused_at = Some(i);
                    break;
                }
                e => panic!("write {i}: unexpected error {e}"),
            }
        }
        let first = refused_at.expect("the leader's log never ran out of room");
        eprintln!("write {first} through the follower refused");

        // Pipelined: a write then a sync. Both are answered, in order.
        let w = send_create(&mut c, "/full/pipelined", 0).await;
        let s = c
            .send(
                common::raw::op::SYNC,
                &common::raw::Enc::new().str("/").finish(),
            )
            .await
            .expect("send sync");
        let r1 = c
            .recv_timeout(Duration::from_secs(20))
            .await
            .expect("the write's answer");
        let r2 = c
            .recv_timeout(Duration::from_secs(20))
            .await
            .expect("the sync's answer");
        assert_eq!((r1.xid, r2.xid), (w, s), "answers out of order");
        assert_eq!(r1.err, SYSTEM_ERROR, "a write while the leader cannot log");
        // Reads are served meanwhile.
        assert_eq!(c.exists("/full", false).await.err, 0);

        // Room again: the follower's writes are carried out.
        std::fs::remove_file(disks[leader].dir.join("filler")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut k = 0;
        loop {
            let xid = send_create(&mut c, &format!("/full/after{k}"), k).await;
            let r = c
                .recv_timeout(Duration::from_secs(20))
                .await
                .expect("an answer");
            assert_eq!(r.xid, xid);
            if r.err == 0 {
                break;
            }
            assert_eq!(r.err, SYSTEM_ERROR);
            assert!(Instant::now() < deadline, "writes did not resume");
            tokio::time::sleep(Duration::from_millis(200)).await;
            k += 1;
        }
        drop(c);
        drop(ens);
    })
    .await;
}
