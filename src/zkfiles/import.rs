//! `corral import-zookeeper`: a ZooKeeper data dir (and its dataLogDir, when apart) into a
//! corral data dir. It loads the newest snapshot and replays the logs after it exactly as
//! ZooKeeper's FileTxnSnapLog.restore does (the snapshot is fuzzy: replay tolerates finding a
//! change already there), then writes the result as one corral snapshot. The target is built
//! beside `--to` and renamed into place, so nothing is half-written; damaged input (a bad
//! checksum, a cut, a gap in the zxids) is refused rather than imported in part.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{at, epoch_of, snap, txnlog, zk_files_dir, zxid_from_name, Args, Staged};
use crate::storage::log::follows;
use crate::storage::snapshot::{snapshot_name, Cursor};
use crate::tree::{parent_of, DataTree};
use crate::txn::TxnOp;

pub const USAGE: &str = "\
usage: corral import-zookeeper --from <ZooKeeper dataDir> [--from-log <ZooKeeper dataLogDir>]
                               --to <corral dataDir> [--force]
  Reads ZooKeeper's newest snapshot and the transaction logs after it (<dir>/version-2) and
  writes a corral data dir holding the same tree, sessions and zxids. Stop ZooKeeper first.
  --force  replace a --to that is not empty
";

/// What was imported.
#[derive(Debug)]
pub struct Summary {
    pub snapshot: Option<PathBuf>,
    pub logs: Vec<PathBuf>,
    pub txns: usize,
    pub zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    /// Nodes of the snapshot naming an ACL its map lacks (written while they were created),
    /// given their ACL by the log.
    pub fuzzy_acls: usize,
    /// Things the user should check (printed to stderr).
    pub warnings: Vec<String>,
}

/// `corral import-zookeeper ...`: exit status 0 when imported, 1 when the input is refused
/// (damaged, not ZooKeeper's, a non-empty target), 2 for usage errors.
pub fn main(args: &[String]) -> i32 {
    let args = match Args::parse(args) {
        Ok(a) if a.help => {
            print!("{USAGE}");
            return 0;
        }
        Ok(a) => a,
        Err(e) => {
            eprint!("corral import-zookeeper: {e}\n{USAGE}");
            return 2;
        }
    };
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        eprint!("corral import-zookeeper: --from and --to are required\n{USAGE}");
        return 2;
    };
    match run(from, args.from_log.as_deref(), to, args.force) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("corral import-zookeeper: warning: {w}");
            }
            match &s.snapshot {
                Some(p) => println!("snapshot {}", p.display()),
                None => println!("no snapshot: replaying the logs from the start"),
            }
            for l in &s.logs {
                println!("log {}", l.display());
            }
            if s.fuzzy_acls > 0 {
                let (n, noun) = match s.fuzzy_acls {
                    1 => (1, "node"),
                    n => (n, "nodes"),
                };
                println!(
                    "{n} {noun} got a new ACL while ZooKeeper wrote the snapshot; the log gives \
                     the ACL"
                );
            }
            println!(
                "imported {} znodes and {} sessions at zxid {:#x} ({} txns replayed) into {}",
                s.nodes,
                s.sessions,
                s.zxid,
                s.txns,
                to.display()
            );
            0
        }
        Err(e) => {
            eprintln!("corral import-zookeeper: {e}");
            1
        }
    }
}

/// `name`s in `dir` that parse as `<prefix>.<zxid>`, with the zxid; sorted by zxid.
fn listed(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, String> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(at(dir))? {
        let e = e.map_err(at(dir))?;
        if let Some(z) = e
            .file_name()
            .to_str()
            .and_then(|n| zxid_from_name(n, prefix))
        {
            v.push((z, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// ZooKeeper's SnapStream.isValidSnapshot for an uncompressed stream: long enough, and ending
/// with a seal's "/" (a snapshot being written, or cut short, does not).
fn looks_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes.ends_with(&[0, 0, 0, 1, b'/'])
}

/// Reads a snapshot file, uncompressing a `.gz` or `.snappy` one (None when the stream is cut
/// short, which ZooKeeper also takes for an incomplete snapshot; an error when it is not such
/// a stream at all).
fn snapshot_bytes(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let raw = fs::read(path).map_err(at(path))?;
    if name.ends_with(".snappy") {
        return unsnappy(&raw).map_err(|e| format!("{}: {e}", path.display()));
    }
    if name.ends_with(".gz") {
        use std::io::Read;
        let mut out = Vec::new();
        return Ok(flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .ok()
            .map(|_| out));
    }
    Ok(Some(raw))
}

/// snappy-java's stream, as ZooKeeper's SnappyOutputStream writes a snapshot: a 16-byte
/// header (the magic, then version and compatible version), then blocks of a big-endian length
/// and that many bytes of raw snappy; a header may come again between blocks (streams written
/// one after the other read as one). None when the stream is cut short.
fn unsnappy(raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    const HEADER: usize = 16;
    /// snappy-java writes 32 KiB blocks; anything far larger is not its stream.
    const MAX_BLOCK: usize = 64 << 20;
    // Empty, or cut inside its header: ZooKeeper was stopped while it began the file.
    if raw.len() < HEADER && MAGIC.starts_with(&raw[..raw.len().min(8)]) {
        return Ok(None);
    }
    if raw.len() < HEADER || raw[..8] != MAGIC {
        return Err("not a snappy stream (no snappy-java header)".to_string());
    }
    let mut out = Vec::new();
    let mut decoder = ::snap::raw::Decoder::new();
    let mut at = HEADER;
    while at < raw.len() {
        let rest = &raw[at..];
        if rest.starts_with(&MAGIC[..rest.len().min(8)]) && rest.len() < HEADER {
            return Ok(None);
        }
        if rest.len() >= HEADER && rest[..8] == MAGIC {
            at += HEADER;
            continue;
        }
        if rest.len() < 4 {
            return Ok(None);
        }
        let n = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_BLOCK)
            .ok_or_else(|| format!("snappy block of {n} bytes at offset {at}"))?;
        let Some(block) = rest.get(4..4 + n) else {
            return Ok(None);
        };
        let len = ::snap::raw::decompress_len(block)
            .map_err(|e| format!("snappy block at offset {at}: {e}"))?;
        if len > MAX_BLOCK {
            return Err(format!("snappy block at offset {at} claims {len} bytes"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| format!("snappy block at offset {at}: {e}"))?;
        at += 4 + n;
    }
    Ok(Some(out))
}

/// Imports `from` (and `from_log`) into `to`.
pub fn run(
    from: &Path,
    from_log: Option<&Path>,
    to: &Path,
    force: bool,
) -> Result<Summary, String> {
    let snap_dir = zk_files_dir(from)?;
    let log_dir = match from_log {
        Some(d) => zk_files_dir(d)?,
        None => snap_dir.clone(),
    };
    let snaps = listed(&snap_dir, "snapshot")?;
    let logs = listed(&log_dir, "log")?;
    let mut warnings = Vec::new();
    if logs.is_empty() {
        warnings.push(format!(
            "no log.* files in {}: only the snapshot is imported; if ZooKeeper's dataLogDir \
             is elsewhere, pass it with --from-log",
            log_dir.display()
        ));
    }
    if snaps.is_empty() && logs.is_empty() {
        return Err(format!(
            "{}: no snapshot.* or log.* files: nothing to import",
            snap_dir.display()
        ));
    }
    // Before the reading: a target that will be refused is refused at once.
    let staged = Staged::new(to, force, &[&snap_dir, &log_dir])?;
    // The newest complete snapshot. One cut short is skipped, as ZooKeeper skips it (a server
    // stopped while writing it; the logs hold everything after the one before). One that looks
    // complete but fails its checksum or does not parse is damage, and refused: the user
    // decides whether an older one and the logs after it are what they want.
    let mut loaded = None;
    for (z, p) in snaps.iter().rev() {
        let bytes = match snapshot_bytes(p)? {
            Some(b) if looks_complete(&b) => b,
            _ => {
                warnings.push(format!(
                    "{}: incomplete (ZooKeeper stopped while writing it?); skipped, as \
                     ZooKeeper skips it",
                    p.display()
                ));
                continue;
            }
        };
        let (tree, counts) = snap::read(Bytes::from(bytes), *z).map_err(|e| {
            format!(
                "{}: {e}\n(move it aside to import from an older snapshot and the logs after \
                 it)",
                p.display()
            )
        })?;
        loaded = Some((tree, counts.unlisted_acls, *z, p.clone()));
        break;
    }
    let (mut tree, mut unlisted, snap_zxid, snapshot) = match loaded {
        Some((tree, unlisted, z, p)) => (tree, unlisted, Some(z), Some(p)),
        None => (DataTree::new(), Default::default(), None, None),
    };
    let fuzzy_acls = unlisted.len();
    // ZooKeeper's FileTxnLog.getLogFiles: the newest log starting at or before the
    // snapshot's zxid, and every later one.
    let start = snap_zxid.unwrap_or(0);
    let first = logs.iter().rposition(|(z, _)| *z <= start).unwrap_or(0);
    let logs = &logs[first..];
    // Without a snapshot the logs must start at the very first txn: replaying a later part
    // onto an empty tree would be a wrong tree, not an import.
    let mut prev = snap_zxid.unwrap_or(0);
    let mut replayed = 0;
    for (_, path) in logs {
        let bytes = fs::read(path).map_err(at(path))?;
        let name = path.display().to_string();
        for mut txn in txnlog::read(&bytes, &name)? {
            if txn.zxid <= start {
                continue;
            }
            if !follows(prev, txn.zxid) {
                return Err(format!(
                    "{name}: zxid {:#x} does not follow {prev:#x}: transactions are missing \
                     between them (a log file lost or damaged)",
                    txn.zxid
                ));
            }
            prev = txn.zxid;
            settle_parent_cversion(&tree, &mut txn.op);
            replay(&mut tree, &txn).map_err(|e| format!("{name}: {e}"))?;
            if !unlisted.is_empty() {
                settle_acls(&txn.op, &mut unlisted);
            }
            replayed += 1;
        }
    }
    // A node of the snapshot still naming an ACL its map lacks was not created or given an
    // ACL by any txn after it: not a fuzzy snapshot's node but a damaged one.
    if let Some((path, n)) = unlisted.iter().find(|(p, _)| tree.get(p).is_some()) {
        return Err(format!(
            "{}: node {path:?} refers to ACL {n}, which neither the snapshot lists nor a \
             later txn sets: the snapshot is damaged",
            snapshot
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    let zxid = tree.last_zxid();
    let accepted = read_epoch(&snap_dir, "acceptedEpoch")?;
    let current = read_epoch(&snap_dir, "currentEpoch")?;
    let epoch = epoch_of(zxid);
    write_corral(
        staged.path(),
        &tree,
        accepted.max(epoch),
        current.max(epoch),
    )?;
    staged.commit()?;
    Ok(Summary {
        snapshot,
        logs: logs.iter().map(|(_, p)| p.clone()).collect(),
        txns: replayed,
        zxid,
        // node_count counts the root twice, as ZooKeeper does.
        nodes: tree.node_count() - 1,
        sessions: tree.sessions().count(),
        fuzzy_acls,
        warnings,
    })
}

/// Applies `txn` as recovery does. The tree asserts that a txn fits it (a replica must stop
/// rather than diverge); files whose checksums hold but whose txns do not fit the snapshot
/// (written by something else, or edited) get an error here instead of a panic.
fn replay(tree: &mut DataTree, txn: &crate::txn::Txn) -> Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tree.apply_replay(txn)));
    std::panic::set_hook(hook);
    r.map_err(|_| {
        format!(
            "the txn at zxid {:#x} does not fit the tree built so far (files from different \
             histories?)",
            txn.zxid
        )
    })
}

/// Marks the nodes `op` gives an ACL (a create, even of a node already there, or a setACL) as
/// settled: `unlisted` holds the snapshot's nodes whose ACL index its map lacks.
fn settle_acls(op: &TxnOp, unlisted: &mut std::collections::BTreeMap<String, i64>) {
    match op {
        TxnOp::Create { path, .. } | TxnOp::SetAcl { path, .. } => {
            unlisted.remove(path);
        }
        TxnOp::Multi(ops) => ops.iter().for_each(|op| settle_acls(op, unlisted)),
        _ => {}
    }
}

/// ZooKeeper's DataTree.createNode takes a parentCVersion of -1 as "the parent's plus one"
/// (older servers logged it so); corral's txns carry the value itself.
fn settle_parent_cversion(tree: &DataTree, op: &mut TxnOp) {
    match op {
        TxnOp::Create {
            path,
            parent_cversion,
            ..
        } if *parent_cversion == -1 => {
            if let Some(p) = tree.get(parent_of(path)) {
                *parent_cversion = p.cversion + 1;
            }
        }
        TxnOp::Multi(ops) => {
            for op in ops {
                settle_parent_cversion(tree, op);
            }
        }
        _ => {}
    }
}

/// One of a ZooKeeper member's epoch files (absent for a standalone server: 0).
fn read_epoch(dir: &Path, name: &str) -> Result<u32, String> {
    let p = dir.join(name);
    match fs::read_to_string(&p) {
        Ok(s) => s
            .trim()
            .parse::<u32>()
            .map_err(|e| format!("{}: not an epoch ({e})", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(at(&p)(e)),
    }
}

/// A corral data dir in `dir`: the tree as one snapshot at its last zxid (so recovery replays
/// nothing), and the epochs when the zxids are past epoch 0 (an ensemble's), so a member
/// started on it never goes back to an older epoch.
fn write_corral(dir: &Path, tree: &DataTree, accepted: u32, current: u32) -> Result<(), String> {
    let snap_dir = crate::server::snapshots::snapshot_dir(dir);
    fs::create_dir_all(&snap_dir).map_err(at(&snap_dir))?;
    let mut out = Vec::new();
    let mut cursor = Cursor::new();
    cursor.begin(tree, &mut out);
    while !cursor.step(tree, 4096, &mut out) {}
    let path = snap_dir.join(snapshot_name(tree.last_zxid()));
    fs::write(&path, &out).map_err(at(&path))?;
    if accepted > 0 || current > 0 {
        crate::storage::epochs::write(dir, accepted, current).map_err(at(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Acl;
    use crate::zkfiles::txnlog::tests::record;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-zkfiles-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("zk").join(crate::zkfiles::VERSION_DIR)).unwrap();
        d
    }

    fn log_file(first: i64, zxids: &[i64]) -> (String, Vec<u8>) {
        let mut f = Vec::new();
        f.extend_from_slice(&txnlog::MAGIC.to_be_bytes());
        f.extend_from_slice(&2i32.to_be_bytes());
        f.extend_from_slice(&0i64.to_be_bytes());
        for z in zxids {
            record(&mut f, *z, -10, &4000i32.to_be_bytes());
        }
        (format!("log.{first:x}"), f)
    }

    #[test]
    fn an_ensembles_epoch_carries_over_and_a_gap_is_refused() {
        let d = scratch("epoch");
        let v2 = d.join("zk").join(crate::zkfiles::VERSION_DIR);
        let z = 3 << 32 | 5;
        let mut t = DataTree::new();
        t.set_last_zxid(z);
        fs::write(v2.join(format!("snapshot.{z:x}")), snap::write(&t).0).unwrap();
        fs::write(v2.join("acceptedEpoch"), "4\n").unwrap();
        let s = run(&d.join("zk"), None, &d.join("corral"), false).unwrap();
        assert_eq!(s.zxid, z);
        assert!(s.warnings[0].contains("--from-log"), "{:?}", s.warnings);
        assert_eq!(
            crate::storage::epochs::read(&d.join("corral")).unwrap(),
            (4, 3)
        );
        let r = crate::storage::recover::recover(
            &d.join("corral").join("wal"),
            &d.join("corral").join("snapshots"),
        )
        .unwrap();
        assert_eq!((r.last_zxid, r.tree.digest()), (z, t.digest()));

        // The next epoch's first txn follows; one after a gap does not.
        let (name, bytes) = log_file(z + 1, &[z + 1, 4 << 32 | 1]);
        fs::write(v2.join(name), bytes).unwrap();
        let s = run(&d.join("zk"), None, &d.join("ok"), false).unwrap();
        assert_eq!((s.zxid, s.txns, s.sessions), (4 << 32 | 1, 2, 1));
        let (name, bytes) = log_file(4 << 32 | 3, &[4 << 32 | 3]);
        fs::write(v2.join(name), bytes).unwrap();
        let e = run(&d.join("zk"), None, &d.join("gap"), false).unwrap_err();
        assert!(e.contains("does not follow"), "{e}");
        assert!(!d.join("gap").exists());
        // Without a snapshot, logs that do not start at the beginning are refused.
        for f in fs::read_dir(&v2).unwrap().flatten() {
            if f.file_name().to_string_lossy().starts_with("snapshot.") {
                fs::remove_file(f.path()).unwrap();
            }
        }
        let e = run(&d.join("zk"), None, &d.join("nosnap"), false).unwrap_err();
        assert!(e.contains("does not follow 0x0"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    /// snappy-java's framing around raw snappy blocks of `parts`.
    fn snappy_stream(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![
            0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
        ];
        for p in parts {
            let block = ::snap::raw::Encoder::new().compress_vec(p).unwrap();
            out.extend_from_slice(&(block.len() as i32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn snappy_streams_whole_concatenated_cut_and_bad() {
        let a = vec![b'a'; 40_000];
        let b = b"the second block".to_vec();
        let one = snappy_stream(&[&a, &b]);
        let whole = [a.clone(), b.clone()].concat();
        assert_eq!(unsnappy(&one).unwrap(), Some(whole.clone()));
        // Two streams one after the other read as one.
        let two = [one.clone(), snappy_stream(&[&b])].concat();
        assert_eq!(
            unsnappy(&two).unwrap(),
            Some([whole.clone(), b.clone()].concat())
        );
        // Empty, cut inside the header, a block, a length or a second header: incomplete.
        for cut in [0, 5, 12] {
            assert_eq!(unsnappy(&one[..cut]).unwrap(), None, "cut at {cut}");
        }
        for cut in [one.len() - 3, 17, one.len() + 5] {
            assert_eq!(unsnappy(&two[..cut]).unwrap(), None, "cut at {cut}");
        }
        // Not snappy-java's stream, or a block that does not decode: refused.
        assert!(unsnappy(b"ZKSN plain snapshot bytes").is_err());
        let mut bad = one.clone();
        bad[21] ^= 0xff;
        bad[22] ^= 0xff;
        assert!(unsnappy(&bad).is_err() || unsnappy(&bad).unwrap() != Some(whole));
        let mut huge = one[..16].to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(unsnappy(&huge).is_err());
    }

    /// A fuzzy snapshot as ZooKeeper can write one: its ACL map lists only index 1 (open),
    /// while node /a, created by zxid 0x11 with a new list during the walk that began at
    /// zxid 0x10 (the snapshot's name), names index 2.
    fn fuzzy_snapshot() -> Vec<u8> {
        use crate::proto::jute::Writer;
        use bytes::{BufMut, BytesMut};
        let mut b = BytesMut::new();
        b.put_i32(snap::MAGIC);
        b.put_i32(crate::zkfiles::FILE_VERSION);
        b.put_i64(-1);
        b.put_i32(0);
        b.put_i32(1);
        b.put_i64(1);
        Acl::encode_list(&Acl::open_unsafe(), &mut b);
        for (path, acl_ref, czxid) in [("", 1i64, 0i64), ("/a", 2, 0x11)] {
            b.put_jstring(path);
            b.put_jbuffer_opt(Some(b"v"));
            b.put_i64(acl_ref);
            for v in [czxid, czxid, 1, 1] {
                b.put_i64(v);
            }
            for v in [0i32, i32::from(path.is_empty()), 0] {
                b.put_i32(v);
            }
            b.put_i64(0);
            b.put_i64(czxid);
        }
        b.put_jstring("/");
        let sum = crate::zkfiles::adler32(&b);
        b.put_i64(i64::from(sum));
        b.put_jstring("/");
        b.to_vec()
    }

    #[test]
    fn a_fuzzy_snapshots_unlisted_acl_comes_from_the_log() {
        use crate::proto::jute::Writer;
        use crate::proto::records::Id;
        use bytes::{BufMut, BytesMut};
        let d = scratch("fuzzyacl");
        let v2 = d.join("zk").join(crate::zkfiles::VERSION_DIR);
        fs::write(v2.join("snapshot.10"), fuzzy_snapshot()).unwrap();
        let digest = vec![Acl {
            perms: 31,
            id: Id::new("digest", "u:h"),
        }];
        // The log after 0x10: /a's create (already in the snapshot), then /b with the same list.
        let mut f = Vec::new();
        f.extend_from_slice(&txnlog::MAGIC.to_be_bytes());
        f.extend_from_slice(&2i32.to_be_bytes());
        f.extend_from_slice(&0i64.to_be_bytes());
        for (z, path) in [(0x11, "/a"), (0x12, "/b")] {
            let mut b = BytesMut::new();
            b.put_jstring(path);
            b.put_jbuffer(b"v");
            Acl::encode_list(&digest, &mut b);
            b.put_jbool(false);
            b.put_i32(z as i32 - 0x10);
            record(&mut f, z, 1, &b);
        }
        // Without the log, /a has no ACL to take: refused, nothing written.
        let e = run(&d.join("zk"), None, &d.join("nolog"), false).unwrap_err();
        assert!(e.contains("\"/a\" refers to ACL 2"), "{e}");
        assert!(!d.join("nolog").exists());
        fs::write(v2.join("log.1"), &f).unwrap();
        let s = run(&d.join("zk"), None, &d.join("corral"), false).unwrap();
        // The root, /a, /b and the three under /zookeeper that every tree has.
        assert_eq!((s.zxid, s.txns, s.nodes, s.fuzzy_acls), (0x12, 2, 6, 1));
        let r = crate::storage::recover::recover(
            &d.join("corral").join("wal"),
            &d.join("corral").join("snapshots"),
        )
        .unwrap();
        for p in ["/a", "/b"] {
            assert_eq!(*r.tree.get(p).unwrap().acl, digest, "{p}");
        }
        assert_eq!(*r.tree.get("/").unwrap().acl, Acl::open_unsafe());
        let _ = fs::remove_dir_all(&d);
    }
}
