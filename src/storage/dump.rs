//! `corral dump-snapshot`: a snapshot file in readable form, shaped like ZooKeeper's
//! `SnapshotFormatter` (a header, every znode with its stat, the session table, a summary), plus
//! what corral's format adds to it: each node's ACL and a `--json` rendering.
//!
//! The file is read twice with `snapshot::Reader`, the reader recovery uses. The first pass
//! checks the whole file and gathers what the printout needs ahead of its place in the file
//! (children counts, ephemerals per session); only a file that passes is printed, so a damaged
//! snapshot prints an error and nothing else. Nothing is held per node but its parent's child
//! count, so a large snapshot dumps in little memory.

use std::collections::HashMap;
use std::io::{self, Write};

use base64::Engine as _;
use bytes::Bytes;

use super::snapshot::{Entry, Reader, VERSION};
use crate::admin::java_date_utc;
use crate::proto::codes::{ephemeral_owner, perms};
use crate::proto::records::Acl;
use crate::tree::{parent_of, Node};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Print each node's data, base64 (SnapshotFormatter's `-d`).
    pub data: bool,
    /// One JSON document instead of text.
    pub json: bool,
}

/// What the summary reports; returned for tests and callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub zxid: i64,
    pub nodes: u64,
    pub data_bytes: u64,
    pub sessions: u64,
    pub ephemerals: u64,
    /// The highest of the snapshot zxid and every node's mzxid and pzxid (a fuzzy snapshot
    /// holds changes made after its zxid), as SnapshotFormatter's `Last zxid`.
    pub last_zxid: i64,
}

#[derive(Debug)]
pub enum Error {
    /// Not a complete, intact snapshot: nothing was printed.
    Damaged(String),
    /// Writing the output failed (e.g. a closed pipe).
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Damaged(why) => write!(f, "damaged snapshot: {why}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The first pass: the file checks out, and the figures the printout needs early.
struct Scan {
    summary: Summary,
    /// Parent path -> number of its children in the file.
    children: HashMap<String, u32>,
    /// Session id -> its ephemerals in the file.
    ephemerals: HashMap<i64, u64>,
    /// Bytes after the end frame (never read by recovery).
    trailing: usize,
}

fn scan(bytes: &[u8]) -> Result<Scan, String> {
    let mut r = Reader::new(Bytes::copy_from_slice(bytes))?;
    let mut s = Scan {
        summary: Summary {
            zxid: r.zxid(),
            last_zxid: r.zxid(),
            ..Summary::default()
        },
        children: HashMap::new(),
        ephemerals: HashMap::new(),
        trailing: 0,
    };
    while let Some(e) = r.next_entry()? {
        match e {
            Entry::Session { .. } => s.summary.sessions += 1,
            Entry::Node { path, node } => {
                let sum = &mut s.summary;
                sum.nodes += 1;
                sum.data_bytes += node.data_len() as u64;
                sum.last_zxid = sum.last_zxid.max(node.mzxid).max(node.pzxid);
                if node.is_session_ephemeral() {
                    sum.ephemerals += 1;
                    *s.ephemerals.entry(node.ephemeral_owner).or_default() += 1;
                }
                if path != "/" {
                    *s.children.entry(parent_of(&path).to_string()).or_default() += 1;
                }
            }
            Entry::End { .. } => {}
        }
    }
    s.trailing = bytes.len() - r.offset();
    Ok(s)
}

/// Prints the snapshot `bytes` (read from `name`) to `out`. A damaged file prints nothing.
pub fn dump_snapshot(
    name: &str,
    bytes: &[u8],
    opts: Options,
    out: &mut dyn Write,
) -> Result<Summary, Error> {
    let scan = scan(bytes).map_err(Error::Damaged)?;
    if opts.json {
        json(name, bytes, &scan, opts, out)?;
    } else {
        text(name, bytes, &scan, opts, out)?;
    }
    Ok(scan.summary)
}

/// `scheme:id:perms`, as zkCli's `setAcl` takes it.
fn acl_string(acl: &[Acl]) -> String {
    acl.iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, perms::letters(a.perms)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kind a stored owner encodes beyond a session id (containers and TTL nodes keep it
/// there, as in ZooKeeper; clients see 0 for them).
fn owner_note(owner: i64) -> String {
    if owner == ephemeral_owner::CONTAINER {
        " (container)".into()
    } else if let Some(ttl) = ephemeral_owner::ttl_of(owner) {
        format!(" (ttl {ttl} ms)")
    } else {
        String::new()
    }
}

/// The cversion a client sees: corral stores the number of children ever created, ZooKeeper
/// counts creations plus deletions (`Node::stat`).
fn client_cversion(node: &Node, children: u32) -> i32 {
    node.cversion.wrapping_mul(2).wrapping_sub(children as i32)
}

fn date(ms: i64) -> String {
    // Date.toString() drops the milliseconds; the raw value follows so nothing is lost.
    match u64::try_from(ms) {
        Ok(u) => format!("{} ({ms})", java_date_utc(u)),
        Err(_) => ms.to_string(),
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// SnapshotFormatter's `%#016x`: `0x` and at least 14 digits.
fn hex(v: i64) -> String {
    format!("{v:#016x}")
}

fn text(
    name: &str,
    bytes: &[u8],
    scan: &Scan,
    opts: Options,
    out: &mut dyn Write,
) -> io::Result<()> {
    let sum = &scan.summary;
    writeln!(out, "Snapshot: {name}")?;
    writeln!(
        out,
        "Format: corral snapshot version {VERSION}, {} bytes",
        bytes.len()
    )?;
    writeln!(
        out,
        "Snapshot zxid: {:#x} (the log is replayed after it)",
        sum.zxid
    )?;
    if scan.trailing > 0 {
        writeln!(
            out,
            "Note: {} bytes after the end frame (ignored)",
            scan.trailing
        )?;
    }
    writeln!(out, "----")?;
    writeln!(out, "ZNode Details (count={}):", sum.nodes)?;
    let mut r = Reader::new(Bytes::copy_from_slice(bytes)).map_err(io::Error::other)?;
    let mut sessions = Vec::new();
    while let Some(e) = r.next_entry().map_err(io::Error::other)? {
        match e {
            Entry::Session { id, entry } => sessions.push((id, entry.timeout_ms)),
            Entry::Node { path, node } => {
                let kids = scan.children.get(&path).copied().unwrap_or(0);
                writeln!(out, "----")?;
                writeln!(out, "{path}")?;
                writeln!(out, "  cZxid = {}", hex(node.czxid))?;
                writeln!(out, "  ctime = {}", date(node.ctime))?;
                writeln!(out, "  mZxid = {}", hex(node.mzxid))?;
                writeln!(out, "  mtime = {}", date(node.mtime))?;
                writeln!(out, "  pZxid = {}", hex(node.pzxid))?;
                writeln!(out, "  cversion = {}", client_cversion(&node, kids))?;
                writeln!(out, "  dataVersion = {}", node.version)?;
                writeln!(out, "  aclVersion = {}", node.aversion)?;
                writeln!(
                    out,
                    "  ephemeralOwner = {}{}",
                    hex(node.ephemeral_owner),
                    owner_note(node.ephemeral_owner)
                )?;
                writeln!(out, "  dataLength = {}", node.data_len())?;
                writeln!(out, "  numChildren = {kids}")?;
                writeln!(out, "  acl = {}", acl_string(&node.acl))?;
                if opts.data {
                    let data = node.data().unwrap_or_default();
                    writeln!(out, "  data = {}", b64(data))?;
                }
            }
            Entry::End { .. } => {}
        }
    }
    writeln!(out, "----")?;
    writeln!(out, "Session Details (sid, timeout, ephemeralCount):")?;
    for (id, timeout) in sessions {
        let eph = scan.ephemerals.get(&id).copied().unwrap_or(0);
        writeln!(out, "{}, {timeout}, {eph}", hex(id))?;
    }
    writeln!(out, "----")?;
    writeln!(out, "Nodes: {}", sum.nodes)?;
    writeln!(out, "Data bytes: {}", sum.data_bytes)?;
    writeln!(out, "Sessions: {}", sum.sessions)?;
    writeln!(out, "Ephemerals: {}", sum.ephemerals)?;
    writeln!(out, "Last zxid: {:#x}", sum.last_zxid)?;
    Ok(())
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Zxids, session ids and owners are 64-bit: JSON readers that hold numbers as doubles would
/// round them, so they are hex strings. Counts and times (ms) fit a double exactly.
fn jhex(v: i64) -> String {
    js(&format!("{v:#x}"))
}

fn json(
    name: &str,
    bytes: &[u8],
    scan: &Scan,
    opts: Options,
    out: &mut dyn Write,
) -> io::Result<()> {
    let sum = &scan.summary;
    writeln!(
        out,
        "{{\"file\":{},\"format\":\"corral-snapshot\",\"version\":{VERSION},\"bytes\":{},\"zxid\":{},",
        js(name),
        bytes.len(),
        jhex(sum.zxid)
    )?;
    writeln!(out, "\"nodes\":[")?;
    let mut r = Reader::new(Bytes::copy_from_slice(bytes)).map_err(io::Error::other)?;
    let mut sessions = Vec::new();
    let mut first = true;
    while let Some(e) = r.next_entry().map_err(io::Error::other)? {
        match e {
            Entry::Session { id, entry } => sessions.push((id, entry.timeout_ms)),
            Entry::Node { path, node } => {
                let kids = scan.children.get(&path).copied().unwrap_or(0);
                let acl: Vec<String> = node
                    .acl
                    .iter()
                    .map(|a| {
                        format!(
                            "{{\"scheme\":{},\"id\":{},\"perms\":{}}}",
                            js(&a.id.scheme),
                            js(&a.id.id),
                            a.perms
                        )
                    })
                    .collect();
                write!(
                    out,
                    "{}{{\"path\":{},\"czxid\":{},\"ctime\":{},\"mzxid\":{},\"mtime\":{},\
                     \"pzxid\":{},\"cversion\":{},\"dataVersion\":{},\"aclVersion\":{},\
                     \"ephemeralOwner\":{},\"dataLength\":{},\"numChildren\":{kids},\"acl\":[{}]",
                    if first { "" } else { ",\n" },
                    js(&path),
                    jhex(node.czxid),
                    node.ctime,
                    jhex(node.mzxid),
                    node.mtime,
                    jhex(node.pzxid),
                    client_cversion(&node, kids),
                    node.version,
                    node.aversion,
                    jhex(node.ephemeral_owner),
                    node.data_len(),
                    acl.join(",")
                )?;
                if opts.data {
                    match node.data() {
                        Some(d) => write!(out, ",\"data\":{}", js(&b64(d)))?,
                        None => write!(out, ",\"data\":null")?,
                    }
                }
                write!(out, "}}")?;
                first = false;
            }
            Entry::End { .. } => {}
        }
    }
    writeln!(out, "\n],")?;
    writeln!(out, "\"sessions\":[")?;
    let rows: Vec<String> = sessions
        .iter()
        .map(|(id, timeout)| {
            format!(
                "{{\"id\":{},\"timeout\":{timeout},\"ephemerals\":{}}}",
                jhex(*id),
                scan.ephemerals.get(id).copied().unwrap_or(0)
            )
        })
        .collect();
    writeln!(out, "{}", rows.join(",\n"))?;
    writeln!(out, "],")?;
    writeln!(
        out,
        "\"summary\":{{\"nodes\":{},\"dataBytes\":{},\"sessions\":{},\"ephemerals\":{},\"lastZxid\":{}}}}}",
        sum.nodes,
        sum.data_bytes,
        sum.sessions,
        sum.ephemerals,
        jhex(sum.last_zxid)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Id;
    use crate::storage::snapshot::Cursor;
    use crate::tree::DataTree;
    use crate::txn::{Txn, TxnOp};

    fn txn(zxid: i64, session_id: i64, op: TxnOp) -> Txn {
        Txn {
            session_id,
            cxid: 0,
            zxid,
            time_ms: 1_700_000_000_000 + zxid,
            op,
        }
    }

    fn create(path: &str, data: &[u8], owner: i64, parent_cversion: i32) -> TxnOp {
        TxnOp::Create {
            opcode: 1,
            path: path.into(),
            data: Some(crate::txn::Data::from(data)),
            acl: vec![
                Acl {
                    perms: perms::READ | perms::ADMIN,
                    id: Id::new("digest", "u:h="),
                },
                Acl {
                    perms: perms::READ,
                    id: Id::new("world", "anyone"),
                },
            ],
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    /// A session, /a (set twice), an ephemeral /a/e of the session, a deleted /a/gone; the
    /// snapshot and the tree it was taken from.
    fn sample() -> (Vec<u8>, DataTree) {
        let mut t = DataTree::new();
        let sid = 0x0100_0000_0000_0007;
        let txns = [
            txn(
                1,
                sid,
                TxnOp::CreateSession {
                    timeout_ms: 4000,
                    password: [9; 16],
                },
            ),
            txn(2, sid, create("/a", b"hello", 0, 1)),
            txn(3, sid, create("/a/e", b"\x00\x01", sid, 1)),
            txn(4, sid, create("/a/gone", b"", 0, 2)),
            txn(
                5,
                sid,
                TxnOp::Delete {
                    path: "/a/gone".into(),
                },
            ),
            txn(
                6,
                sid,
                TxnOp::SetData {
                    path: "/a".into(),
                    data: Some(crate::txn::Data::from(&b"hi!"[..])),
                    version: 1,
                },
            ),
            txn(
                7,
                sid,
                TxnOp::SetData {
                    path: "/a".into(),
                    data: Some(crate::txn::Data::from(&b"bye"[..])),
                    version: 2,
                },
            ),
        ];
        for x in &txns {
            t.apply(x);
        }
        let mut out = Vec::new();
        let mut c = Cursor::new();
        c.begin(&t, &mut out);
        while !c.step(&t, 100, &mut out) {}
        (out, t)
    }

    fn dump(bytes: &[u8], opts: Options) -> Result<(String, Summary), Error> {
        let mut out = Vec::new();
        let s = dump_snapshot("snap", bytes, opts, &mut out)?;
        Ok((String::from_utf8(out).unwrap(), s))
    }

    /// The lines of the node `path`'s block.
    fn block<'a>(text: &'a str, path: &str) -> Vec<&'a str> {
        let mut lines = text.lines().skip_while(|l| *l != path);
        lines.next().expect("node printed");
        lines.take_while(|l| l.starts_with("  ")).collect()
    }

    #[test]
    fn text_has_stats_acls_sessions_and_summary() {
        let (bytes, tree) = sample();
        let (text, sum) = dump(&bytes, Options::default()).unwrap();
        assert!(text.contains("\nSnapshot zxid: 0x7 "), "{text}");
        let a = block(&text, "/a");
        for want in [
            "  cZxid = 0x00000000000002",
            "  mZxid = 0x00000000000007",
            "  pZxid = 0x00000000000005",
            // two creations and one deletion, as a client's stat shows it
            "  cversion = 3",
            "  dataVersion = 2",
            "  aclVersion = 0",
            "  ephemeralOwner = 0x00000000000000",
            "  dataLength = 3",
            "  numChildren = 1",
            "  acl = digest:u:h=:ra, world:anyone:r",
            "  ctime = Tue Nov 14 22:13:20 UTC 2023 (1700000000002)",
        ] {
            assert!(a.contains(&want), "{want:?} in {a:#?}");
        }
        // What a client's stat of /a says.
        let st = tree.get("/a").unwrap().stat();
        assert!(a.contains(&format!("  cversion = {}", st.cversion).as_str()));
        assert!(a.contains(&format!("  pZxid = {:#016x}", st.pzxid).as_str()));
        let e = block(&text, "/a/e");
        assert!(
            e.contains(&"  ephemeralOwner = 0x100000000000007"),
            "{e:#?}"
        );
        assert!(!text.contains("/a/gone"));
        assert!(!text.contains("  data = "));
        assert!(text.contains(
            "Session Details (sid, timeout, ephemeralCount):\n0x100000000000007, 4000, 1\n"
        ));
        // /, /zookeeper, /zookeeper/quota, /zookeeper/config, /a, /a/e
        assert!(text.contains("ZNode Details (count=6):"), "{text}");
        assert!(text.ends_with(
            "----\nNodes: 6\nData bytes: 5\nSessions: 1\nEphemerals: 1\nLast zxid: 0x7\n"
        ));
        assert_eq!(
            (sum.nodes, sum.data_bytes, sum.sessions, sum.ephemerals),
            (6, 5, 1, 1)
        );
        let (with_data, _) = dump(
            &bytes,
            Options {
                data: true,
                json: false,
            },
        )
        .unwrap();
        assert!(block(&with_data, "/a").contains(&"  data = Ynll"));
        assert!(block(&with_data, "/a/e").contains(&"  data = AAE="));
    }

    #[test]
    fn json_is_one_document() {
        let (bytes, _) = sample();
        let (j, _) = dump(
            &bytes,
            Options {
                data: true,
                json: true,
            },
        )
        .unwrap();
        assert!(j.starts_with("{\"file\":\"snap\","), "{j}");
        assert!(j.contains("\"path\":\"/a\",\"czxid\":\"0x2\""), "{j}");
        assert!(j.contains("\"dataVersion\":2,"), "{j}");
        assert!(j.contains("\"data\":\"Ynll\""), "{j}");
        assert!(j.contains("{\"id\":\"0x100000000000007\",\"timeout\":4000,\"ephemerals\":1}"));
        assert!(j.trim_end().ends_with("\"lastZxid\":\"0x7\"}}"), "{j}");
        // Brackets and braces balance outside strings.
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for c in j.chars() {
            match (in_str, esc, c) {
                (true, true, _) => esc = false,
                (true, false, '\\') => esc = true,
                (true, false, '"') => in_str = false,
                (false, _, '"') => in_str = true,
                (false, _, '{' | '[') => depth += 1,
                (false, _, '}' | ']') => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0);
        assert_eq!(js("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn damaged_snapshots_print_nothing() {
        let (bytes, _) = sample();
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            let r = dump_snapshot("snap", &bytes[..cut], Options::default(), &mut out);
            assert!(matches!(r, Err(Error::Damaged(_))), "cut {cut}");
            assert!(out.is_empty(), "cut {cut}");
        }
        let mut bad = bytes.clone();
        bad[bytes.len() / 2] ^= 0x10;
        assert!(matches!(
            dump(&bad, Options::default()),
            Err(Error::Damaged(_))
        ));
        // Bytes after the end frame are reported, not fatal (recovery ignores them too).
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"xyz");
        let (text, _) = dump(&longer, Options::default()).unwrap();
        assert!(text.contains("Note: 3 bytes after the end frame"), "{text}");
    }

    #[test]
    fn owners_and_perms() {
        assert_eq!(perms::letters(perms::ALL), "cdrwa");
        assert_eq!(perms::letters(0), "");
        assert_eq!(owner_note(ephemeral_owner::CONTAINER), " (container)");
        assert_eq!(owner_note(ephemeral_owner::ttl(5000)), " (ttl 5000 ms)");
        assert_eq!(owner_note(0x42), "");
        assert_eq!(hex(ephemeral_owner::CONTAINER), "0x8000000000000000");
        assert_eq!(date(-1), "-1");
    }
}
