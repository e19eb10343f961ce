//! ZooKeeper's transaction log file (`log.<first zxid hex>`), read into corral [`Txn`]s. The
//! layout, as FileTxnLog and Util write it (jute, big-endian):
//!
//! ```text
//! log    = magic:i32("ZKLG") version:i32(2) dbid:i64 record* zero*
//! record = adler32:i64 len:i32 txn[len] 'B'
//! txn    = TxnHeader(clientId:i64 cxid:i32 zxid:i64 time:i64 type:i32) record-of-type
//!          [TxnDigest(version:i32 treeDigest:i64)]
//! ```
//! The file is preallocated with zeros, so a record of length 0 (or the end of the file at a
//! record boundary) is the clean end. Unlike ZooKeeper, which stops quietly at a partial
//! last record, the importer refuses one: a record cut short or failing its checksum is
//! damage the user should know about before moving their data.
//!
//! The txn records (zookeeper.jute): CreateTxn(path data acl ephemeral:bool parentCVersion),
//! CreateContainerTxn(path data acl parentCVersion), CreateTTLTxn(... parentCVersion ttl:i64),
//! DeleteTxn(path), SetDataTxn(path data version), SetACLTxn(path acl version),
//! CheckVersionTxn(path version), CreateSessionTxn(timeOut), CloseSessionTxn(paths),
//! ErrorTxn(err), MultiTxn(vector of (type:i32 data:buffer)).

use bytes::Bytes;

use super::{adler32, session_password, FILE_VERSION};
use crate::proto::codes::{ephemeral_owner, Code};
use crate::proto::jute::{DecodeError, DecodeResult, Reader};
use crate::proto::records::Acl;
use crate::txn::{Data, Txn, TxnOp};

/// "ZKLG"
pub const MAGIC: i32 = 0x5a4b_4c47;
/// FileHeader: magic, version, dbid.
const HEADER_LEN: usize = 16;
/// The byte after each record ('B', "EOR").
const END_OF_RECORD: u8 = 0x42;

// ZooDefs.OpCode values of the txns a log holds.
const CREATE: i32 = 1;
const DELETE: i32 = 2;
const SET_DATA: i32 = 5;
const SET_ACL: i32 = 7;
const CHECK: i32 = 13;
const MULTI: i32 = 14;
const CREATE2: i32 = 15;
const RECONFIG: i32 = 16;
const CREATE_CONTAINER: i32 = 19;
const DELETE_CONTAINER: i32 = 20;
const CREATE_TTL: i32 = 21;
const CREATE_SESSION: i32 = -10;
const CLOSE_SESSION: i32 = -11;
const ERROR: i32 = -1;

/// Reads every txn of one log file, in file order. `name` goes into the errors.
pub fn read(bytes: &[u8], name: &str) -> Result<Vec<Txn>, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{name}: too short for a ZooKeeper log header"));
    }
    if i32::from_be_bytes(bytes[0..4].try_into().unwrap()) != MAGIC {
        return Err(format!(
            "{name}: not a ZooKeeper transaction log (no ZKLG magic)"
        ));
    }
    let version = i32::from_be_bytes(bytes[4..8].try_into().unwrap());
    if version != FILE_VERSION {
        return Err(format!("{name}: unsupported log version {version}"));
    }
    let mut txns = Vec::new();
    let mut pos = HEADER_LEN;
    loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break;
        }
        if rest.len() < 12 {
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(format!(
                "{name}: record at offset {pos} is cut short (the file is truncated or damaged)"
            ));
        }
        let crc = i64::from_be_bytes(rest[0..8].try_into().unwrap());
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap());
        if len == 0 {
            // The preallocated zeros after the last record; anything else there is a length
            // that was damaged to 0, and the records after it would be lost unnoticed.
            if let Some(i) = first_non_zero(rest) {
                return Err(format!(
                    "{name}: bytes after the end of the records at offset {} (damaged)",
                    pos + i
                ));
            }
            break;
        }
        let fits = usize::try_from(len).is_ok_and(|l| l < rest.len() - 12);
        if !fits {
            return Err(format!(
                "{name}: record at offset {pos} claims {len} bytes but the file ends first \
                 (truncated or damaged)"
            ));
        }
        let len = len as usize;
        let body = &rest[12..12 + len];
        if rest[12 + len] != END_OF_RECORD {
            return Err(format!(
                "{name}: record at offset {pos} has no end marker (damaged)"
            ));
        }
        if crc != i64::from(adler32(body)) {
            return Err(format!(
                "{name}: record at offset {pos} fails its checksum (damaged)"
            ));
        }
        let txn = decode(body).map_err(|e| format!("{name}: record at offset {pos}: {e}"))?;
        txns.push(txn);
        pos += 12 + len + 1;
    }
    Ok(txns)
}

/// The offset of the first byte of `b` that is not zero. The padding after the records is
/// most of a 64 MiB file: chunks compared with zeros go at memcmp's speed.
fn first_non_zero(b: &[u8]) -> Option<usize> {
    const ZEROS: [u8; 4096] = [0; 4096];
    let chunk = b.chunks(ZEROS.len()).position(|c| c != &ZEROS[..c.len()])?;
    let at = chunk * ZEROS.len();
    b[at..].iter().position(|&x| x != 0).map(|i| at + i)
}

fn bad(e: DecodeError) -> String {
    e.to_string()
}

/// One record's txn: its header, then the record its type names.
fn decode(body: &[u8]) -> Result<Txn, String> {
    let mut r = Reader::new(Bytes::copy_from_slice(body));
    let session_id = r.i64().map_err(bad)?;
    let cxid = r.i32().map_err(bad)?;
    let zxid = r.i64().map_err(bad)?;
    let time_ms = r.i64().map_err(bad)?;
    let kind = r.i32().map_err(bad)?;
    let op = match kind {
        MULTI => {
            let n = r.vec_len(8).map_err(bad)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                let sub_kind = r.i32().map_err(bad)?;
                let data = r.buffer().map_err(bad)?;
                let mut sr = Reader::new(data);
                let op = decode_op(sub_kind, &mut sr, session_id)?;
                if sr.remaining() != 0 {
                    return Err(format!(
                        "trailing bytes in a multi's txn of type {sub_kind}"
                    ));
                }
                ops.push(op);
            }
            if ops.iter().any(|o| matches!(o, TxnOp::Error(_))) {
                // A failed multi (DataTree.processTxn): nothing applies; the ops before the
                // first error report Ok, those after it RuntimeInconsistency.
                let mut post_failed = false;
                TxnOp::MultiError(
                    ops.iter()
                        .map(|o| match o {
                            TxnOp::Error(c) => {
                                post_failed = true;
                                *c
                            }
                            _ if post_failed => Code::RuntimeInconsistency,
                            _ => Code::Ok,
                        })
                        .collect(),
                )
            } else {
                TxnOp::Multi(ops)
            }
        }
        CLOSE_SESSION => {
            // Its CloseSessionTxn lists the ephemerals to delete, which the tree derives
            // anyway; it may be absent (closeSessionTxn disabled), and a digest may follow.
            TxnOp::CloseSession
        }
        k => decode_op(k, &mut r, session_id)?,
    };
    // What may follow is a TxnDigest (3.6+), which corral does not keep.
    Ok(Txn {
        session_id,
        cxid,
        zxid,
        time_ms,
        op,
    })
}

fn data(r: &mut Reader) -> DecodeResult<Option<Data>> {
    Ok(r.buffer_opt()?.map(|d| Data::from(&d[..])))
}

fn acl(r: &mut Reader) -> DecodeResult<Vec<Acl>> {
    Acl::decode_list(r)
}

/// The op of a txn record of type `kind`; `session_id` owns an ephemeral it creates.
fn decode_op(kind: i32, r: &mut Reader, session_id: i64) -> Result<TxnOp, String> {
    let op = match kind {
        CREATE | CREATE2 => {
            let path = r.string().map_err(bad)?;
            let data = data(r).map_err(bad)?;
            let acl = acl(r).map_err(bad)?;
            let ephemeral = r.bool().map_err(bad)?;
            let parent_cversion = r.i32().map_err(bad)?;
            TxnOp::Create {
                opcode: kind,
                path,
                data,
                acl,
                ephemeral_owner: if ephemeral { session_id } else { 0 },
                parent_cversion,
            }
        }
        CREATE_CONTAINER | CREATE_TTL => {
            let path = r.string().map_err(bad)?;
            let data = data(r).map_err(bad)?;
            let acl = acl(r).map_err(bad)?;
            let parent_cversion = r.i32().map_err(bad)?;
            let owner = if kind == CREATE_TTL {
                let ttl = r.i64().map_err(bad)?;
                if !(1..=ephemeral_owner::TTL_MAX).contains(&ttl) {
                    return Err(format!("TTL {ttl} out of range"));
                }
                ephemeral_owner::ttl(ttl)
            } else {
                ephemeral_owner::CONTAINER
            };
            TxnOp::Create {
                opcode: kind,
                path,
                data,
                acl,
                ephemeral_owner: owner,
                parent_cversion,
            }
        }
        DELETE | DELETE_CONTAINER => TxnOp::Delete {
            path: r.string().map_err(bad)?,
        },
        // A reconfig is logged as the new /zookeeper/config data.
        SET_DATA | RECONFIG => TxnOp::SetData {
            path: r.string().map_err(bad)?,
            data: data(r).map_err(bad)?,
            version: r.i32().map_err(bad)?,
        },
        SET_ACL => TxnOp::SetAcl {
            path: r.string().map_err(bad)?,
            acl: acl(r).map_err(bad)?,
            version: r.i32().map_err(bad)?,
        },
        CHECK => {
            let path = r.string().map_err(bad)?;
            r.i32().map_err(bad)?;
            TxnOp::Check { path }
        }
        CREATE_SESSION => TxnOp::CreateSession {
            timeout_ms: r.i32().map_err(bad)?,
            password: session_password(session_id),
        },
        CLOSE_SESSION => {
            // Inside a multi it never occurs; read its list so the caller sees no trailing bytes.
            if r.remaining() > 0 {
                r.strings().map_err(bad)?;
            }
            TxnOp::CloseSession
        }
        ERROR => {
            let code = r.i32().map_err(bad)?;
            TxnOp::Error(Code::from_i32(code).ok_or_else(|| format!("unknown error code {code}"))?)
        }
        k => return Err(format!("txn type {k} is not one corral can import")),
    };
    if let TxnOp::Create { path, .. }
    | TxnOp::Delete { path }
    | TxnOp::SetData { path, .. }
    | TxnOp::SetAcl { path, .. }
    | TxnOp::Check { path } = &op
    {
        if crate::tree::validate_path(path).is_err() {
            return Err(format!("bad path {path:?} in a txn of type {kind}"));
        }
    }
    Ok(op)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::jute::Writer;
    use bytes::{BufMut, BytesMut};

    /// Appends one record of session 0x55, as FileTxnLog writes it.
    pub(crate) fn record(out: &mut Vec<u8>, zxid: i64, kind: i32, body: &[u8]) {
        let mut t = BytesMut::new();
        t.put_i64(0x55);
        t.put_i32(3);
        t.put_i64(zxid);
        t.put_i64(1_700_000_000_000);
        t.put_i32(kind);
        t.put_slice(body);
        // A 3.6+ digest after the record.
        t.put_i32(2);
        t.put_i64(99);
        out.extend_from_slice(&i64::from(adler32(&t)).to_be_bytes());
        out.extend_from_slice(&(t.len() as i32).to_be_bytes());
        out.extend_from_slice(&t);
        out.push(b'B');
    }

    fn log() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC.to_be_bytes());
        f.extend_from_slice(&2i32.to_be_bytes());
        f.extend_from_slice(&0i64.to_be_bytes());
        let mut b = BytesMut::new();
        b.put_i32(4000);
        record(&mut f, 1, CREATE_SESSION, &b);
        let mut b = BytesMut::new();
        b.put_jstring("/e");
        b.put_jbuffer(b"x");
        Acl::encode_list(&Acl::open_unsafe(), &mut b);
        b.put_jbool(true);
        b.put_i32(1);
        record(&mut f, 2, CREATE, &b);
        let mut b = BytesMut::new();
        b.put_jstring("/t");
        b.put_i32(-1);
        Acl::encode_list(&Acl::open_unsafe(), &mut b);
        b.put_i32(2);
        b.put_i64(60_000);
        record(&mut f, 3, CREATE_TTL, &b);
        let mut m = BytesMut::new();
        m.put_i32(2);
        for code in [0, -101] {
            let mut e = BytesMut::new();
            e.put_i32(code);
            m.put_i32(ERROR);
            m.put_jbuffer(&e);
        }
        record(&mut f, 4, MULTI, &m);
        f.resize(f.len() + 300, 0);
        f
    }

    #[test]
    fn reads_records_and_maps_them() {
        let f = log();
        let txns = read(&f, "log.1").unwrap();
        assert_eq!(txns.len(), 4);
        assert_eq!(
            txns[0].op,
            TxnOp::CreateSession {
                timeout_ms: 4000,
                password: session_password(0x55)
            }
        );
        match &txns[1].op {
            TxnOp::Create {
                ephemeral_owner,
                parent_cversion,
                ..
            } => assert_eq!((*ephemeral_owner, *parent_cversion), (0x55, 1)),
            op => panic!("{op:?}"),
        }
        match &txns[2].op {
            TxnOp::Create {
                ephemeral_owner,
                data,
                ..
            } => {
                assert_eq!(ephemeral_owner::ttl_of(*ephemeral_owner), Some(60_000));
                assert_eq!(*data, None);
            }
            op => panic!("{op:?}"),
        }
        assert_eq!(txns[3].op, TxnOp::MultiError(vec![Code::Ok, Code::NoNode]));
        assert_eq!(txns[3].zxid, 4);
    }

    #[test]
    fn damage_is_refused() {
        let f = log();
        let end = f.iter().rposition(|&b| b != 0).unwrap() + 1;
        // Any cut inside the records (not at a record boundary) is refused.
        let mut boundaries = vec![HEADER_LEN];
        let mut pos = HEADER_LEN;
        while pos < end {
            let len = i32::from_be_bytes(f[pos + 8..pos + 12].try_into().unwrap()) as usize;
            pos += 12 + len + 1;
            boundaries.push(pos);
        }
        for cut in HEADER_LEN..end {
            let r = read(&f[..cut], "log.1");
            // A cut inside the zero high half of a checksum looks like the zero fill: the
            // records before it are all there, so that is still a whole log.
            let last = *boundaries.iter().rfind(|&&b| b <= cut).unwrap();
            let whole = f[last..cut].iter().all(|&b| b == 0);
            assert_eq!(r.is_ok(), whole, "cut {cut}: {r:?}");
        }
        // Every byte but the header's dbid, which nothing checks (ZooKeeper neither).
        for i in (0..8).chain(HEADER_LEN..end) {
            let mut bad = f.clone();
            bad[i] ^= 0x10;
            assert!(read(&bad, "log.1").is_err(), "flip at {i}");
        }
    }
}
