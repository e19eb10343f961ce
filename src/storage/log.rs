//! The write-ahead log's byte format and the pure halves of writing and recovering it.
//!
//! A log is a sequence of segment files `wal-<seq:016x>.log` in dataLogDir. Each segment:
//! ```text
//! segment = header record* zero*
//! header  = "CORRALWL" version:u32(1) zero-pad to 4096 bytes
//! record  = len:u32 crc:u32 zxid:i64 txn[len]     (big-endian)
//!           crc = CRC32C over the zxid and txn bytes
//! ```
//! Segments are zero-filled ahead of the writer, so the first record with `len == 0` marks the
//! clean end. Records follow each other with no padding; every flush rewrites the partial last
//! 4 KiB block and the blocks after it (`TailBuffer`), so writes are always whole aligned
//! blocks, as O_DIRECT needs. Recovery (`scan`) accepts records while the length fits, the CRC
//! matches, the txn decodes and the zxid is the next one; the first failure is the torn tail.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{decode_txn, encode_txn};
use crate::txn::Txn;

pub const BLOCK: usize = 4096;
pub const HEADER_LEN: usize = BLOCK;
pub const MAGIC: &[u8; 8] = b"CORRALWL";
pub const VERSION: u32 = 1;
/// len + crc + zxid (`limits` ties it to the other bounds).
pub use crate::limits::RECORD_HEADER;
/// The largest txn a record may carry: prep refuses larger ones, so recovery reads every
/// complete record the writer produced (`limits`).
pub use crate::limits::TXN_MAX;

pub fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.log")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

pub fn header() -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_be_bytes());
    h
}

pub fn header_ok(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && &bytes[..8] == MAGIC && bytes[8..12] == VERSION.to_be_bytes()[..]
}

/// Appends one framed record to `b`.
pub fn encode_record(txn: &Txn, b: &mut BytesMut) {
    let start = begin_record(txn.zxid, b);
    encode_txn(txn, b);
    end_record(start, b);
}

/// Appends one framed record whose txn is already encoded (`codec::encode_txn`), as replication
/// carries it.
pub fn encode_record_raw(zxid: i64, txn: &[u8], b: &mut BytesMut) {
    let start = begin_record(zxid, b);
    b.put_slice(txn);
    end_record(start, b);
}

fn begin_record(zxid: i64, b: &mut BytesMut) -> usize {
    let start = b.len();
    b.put_u32(0);
    b.put_u32(0);
    b.put_i64(zxid);
    start
}

fn end_record(start: usize, b: &mut BytesMut) {
    let len = b.len() - start - RECORD_HEADER;
    // A record recovery would read as torn must never be written (prep bounds every txn).
    assert!(
        len <= TXN_MAX,
        "a {len}-byte txn is over the log's record limit"
    );
    let len = len as u32;
    let crc = crc32c::crc32c(&b[start + 8..]);
    b[start..start + 4].copy_from_slice(&len.to_be_bytes());
    b[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A zero length: the zero-filled space after the last record.
    Clean,
    /// The bytes ran out before the zero fill (a segment that was never zero-filled further).
    Eof,
    /// A record that is cut short, fails its CRC, does not decode or breaks the zxid sequence:
    /// a write torn by a crash. Everything from `valid_end` on is discarded.
    Torn(&'static str),
}

pub struct Scan {
    pub txns: Vec<Txn>,
    /// Where each txn's encoded payload (the record's bytes after its header, as
    /// `codec::encode_txn` produced them) lies in the scanned bytes; parallel to `txns`.
    pub payloads: Vec<std::ops::Range<usize>>,
    /// Offset just past the last good record.
    pub valid_end: usize,
    pub end: End,
}

/// Whether a record with zxid `next` may follow one with `prev` in the log: the next counter of
/// the same epoch, or the first zxid of a newer epoch (a new leader's first proposal has counter
/// 1; the epoch's counter 0 names its NEWLEADER and is never logged).
pub fn follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || ((next >> 32) > (prev >> 32) && next & 0xffff_ffff == 1)
}

/// Reads the records of one segment (header included in `bytes`). `prev_zxid` is the zxid of the
/// record before the first one (the first must `follow` it), or None to accept any first zxid
/// (the oldest segment).
pub fn scan(bytes: &[u8], prev_zxid: Option<i64>) -> Scan {
    let mut txns = Vec::new();
    let mut payloads = Vec::new();
    let (valid_end, end) = scan_each(bytes, prev_zxid, |t, payload| {
        txns.push(t);
        payloads.push(payload);
    });
    Scan {
        txns,
        payloads,
        valid_end,
        end,
    }
}

/// `scan`, handing each record to `each` as it is decoded instead of collecting them: recovery
/// replays a segment of a million records without holding a million decoded txns at once.
/// Returns where the good records end and why.
pub fn scan_each(
    bytes: &[u8],
    mut prev_zxid: Option<i64>,
    mut each: impl FnMut(Txn, std::ops::Range<usize>),
) -> (usize, End) {
    let mut pos = HEADER_LEN;
    let end = loop {
        if pos + 4 > bytes.len() {
            break End::Eof;
        }
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break End::Clean;
        }
        if len > TXN_MAX || pos + RECORD_HEADER + len > bytes.len() {
            break End::Torn("record runs past the end");
        }
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        let body = &bytes[pos + 8..pos + RECORD_HEADER + len];
        if crc32c::crc32c(body) != crc {
            break End::Torn("CRC mismatch");
        }
        let zxid = i64::from_be_bytes(body[..8].try_into().unwrap());
        if prev_zxid.is_some_and(|p| !follows(p, zxid)) {
            break End::Torn("zxid out of sequence");
        }
        match decode_txn(zxid, Bytes::copy_from_slice(&body[8..])) {
            Ok(t) => each(t, pos + RECORD_HEADER..pos + RECORD_HEADER + len),
            Err(_) => break End::Torn("txn does not decode"),
        }
        prev_zxid = Some(zxid);
        pos += RECORD_HEADER + len;
    };
    (pos, end)
}

/// The unflushed end of a segment: whole blocks from `block_start` on, ready to be written
/// with one aligned write. After a flush only the partial last block is kept.
pub struct TailBuffer {
    /// File offset of `bytes[0]`; always block-aligned.
    block_start: u64,
    bytes: BytesMut,
    /// Records were pushed since the last flush (the partial block alone needs no rewrite).
    appended: bool,
}

impl TailBuffer {
    /// A tail for a segment whose records end at `end`; `partial` holds the bytes of the
    /// block containing `end`, from its start up to `end`.
    pub fn new(end: u64, partial: &[u8]) -> TailBuffer {
        let block_start = end - end % BLOCK as u64;
        assert_eq!(
            partial.len() as u64,
            end - block_start,
            "partial block length"
        );
        TailBuffer {
            block_start,
            bytes: BytesMut::from(partial),
            appended: false,
        }
    }

    /// File offset just past the last record.
    pub fn end(&self) -> u64 {
        self.block_start + self.bytes.len() as u64
    }

    pub fn push(&mut self, txn: &Txn) {
        encode_record(txn, &mut self.bytes);
        self.appended = true;
    }

    /// Appends a record whose txn is already encoded.
    pub fn push_raw(&mut self, zxid: i64, txn: &[u8]) {
        encode_record_raw(zxid, txn, &mut self.bytes);
        self.appended = true;
    }

    /// The aligned write to make: file offset and length in whole blocks; length 0 when
    /// nothing was appended since the last flush.
    pub fn pending_span(&self) -> (u64, usize) {
        let len = if self.appended {
            self.bytes.len().div_ceil(BLOCK) * BLOCK
        } else {
            0
        };
        (self.block_start, len)
    }

    /// Fills `dst` (of `pending_span`'s length) with the bytes to write, zero-padded: the
    /// writer copies straight into its DMA buffer.
    pub fn copy_pending(&self, dst: &mut [u8]) {
        dst[..self.bytes.len()].copy_from_slice(&self.bytes);
        dst[self.bytes.len()..].fill(0);
    }

    /// `pending_span` and `copy_pending` as an owned buffer (tests and tools).
    pub fn pending(&self) -> (u64, Vec<u8>) {
        let (at, len) = self.pending_span();
        let mut v = vec![0u8; len];
        if len > 0 {
            self.copy_pending(&mut v);
        }
        (at, v)
    }

    /// After `pending()` was written: keep only the partial last block.
    pub fn flushed(&mut self) {
        let whole = self.bytes.len() - self.bytes.len() % BLOCK;
        let _ = self.bytes.split_to(whole);
        self.block_start += whole as u64;
        self.appended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes::Code;
    use crate::txn::TxnOp;

    fn txn(zxid: i64, pad: usize) -> Txn {
        Txn {
            session_id: 1,
            cxid: zxid as i32,
            zxid,
            time_ms: 0,
            op: TxnOp::Create {
                opcode: 1,
                path: format!("/n{zxid}"),
                data: Some(crate::txn::Data::from(vec![b'x'; pad])),
                acl: vec![],
                ephemeral_owner: 0,
                parent_cversion: zxid as i32,
            },
        }
    }

    /// Builds a segment image the way the writer does: header, then flushes.
    fn image(txns: &[Txn], size: usize) -> Vec<u8> {
        let mut file = header();
        file.resize(size, 0);
        let mut tail = TailBuffer::new(HEADER_LEN as u64, &[]);
        for (i, t) in txns.iter().enumerate() {
            tail.push(t);
            if i % 3 == 2 || i == txns.len() - 1 {
                let (at, bytes) = tail.pending();
                file[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
                tail.flushed();
            }
        }
        file
    }

    #[test]
    fn writes_then_scans_back() {
        let txns: Vec<Txn> = (1..=40).map(|z| txn(z, (z as usize * 97) % 3000)).collect();
        let file = image(&txns, 1 << 20);
        let s = scan(&file, None);
        assert_eq!(s.end, End::Clean);
        assert_eq!(s.txns, txns);
        for (t, r) in txns.iter().zip(&s.payloads) {
            let mut b = BytesMut::new();
            encode_txn(t, &mut b);
            assert_eq!(&file[r.clone()], &b[..], "payload of {}", t.zxid);
        }
    }

    #[test]
    fn every_truncation_and_corruption_recovers_a_prefix() {
        let txns: Vec<Txn> = (1..=6).map(|z| txn(z, 50)).collect();
        let file = image(&txns, 3 * BLOCK);
        let full = scan(&file, None);
        let ends: Vec<usize> = {
            // Offsets where each record ends.
            let mut v = Vec::new();
            let mut pos = HEADER_LEN;
            for t in &txns {
                let mut b = BytesMut::new();
                encode_record(t, &mut b);
                pos += b.len();
                v.push(pos);
            }
            v
        };
        assert_eq!(full.valid_end, *ends.last().unwrap());
        for cut in HEADER_LEN..full.valid_end {
            // Torn: the file ends at `cut` (the rest of the block never reached the disk).
            let mut torn = file.clone();
            for b in &mut torn[cut..] {
                *b = 0;
            }
            let s = scan(&torn, None);
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.txns.len(), complete, "cut at {cut}");
            assert_eq!(s.txns[..], txns[..complete]);
            // Corrupt: one byte flipped inside the records.
            let mut bad = file.clone();
            bad[cut] ^= 0x5a;
            let s = scan(&bad, None);
            let first_bad = ends.iter().position(|&e| e > cut).unwrap();
            assert_eq!(s.txns[..], txns[..first_bad], "flip at {cut}");
            assert!(matches!(s.end, End::Torn(_)));
        }
    }

    /// A txn whose encoding is exactly `len` bytes.
    fn txn_of_len(zxid: i64, len: usize) -> Txn {
        let mut t = txn(zxid, 0);
        let pad = len - crate::storage::codec::encoded_len(&t.op);
        t.op = txn(zxid, pad).op;
        t
    }

    #[test]
    fn records_at_every_size_boundary_read_back() {
        // Around the 64 MiB the record limit once was (a 70 MiB create was acknowledged, then
        // read back as torn), and past a whole segment: each is one complete record.
        let old_limit = 64 << 20;
        let sizes = [
            old_limit - 1,
            old_limit,
            old_limit + 1,
            crate::limits::SEGMENT_BYTES as usize + 6 * BLOCK + 3,
        ];
        let txns: Vec<Txn> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| txn_of_len(i as i64 + 1, n))
            .collect();
        let total: usize = sizes.iter().map(|n| n + RECORD_HEADER).sum();
        let file = image(&txns, HEADER_LEN + total + 2 * BLOCK);
        let s = scan(&file, None);
        assert_eq!(s.end, End::Clean);
        assert_eq!(s.txns.len(), sizes.len());
        assert!(s.txns == txns, "records changed on the way back");
        // Cut anywhere inside the last record: the others stay, that one is torn.
        let mut cut = file.clone();
        cut.truncate(HEADER_LEN + total - 1);
        let s = scan(&cut, None);
        assert_eq!(s.txns.len(), sizes.len() - 1);
        assert!(matches!(s.end, End::Torn(_)));
    }

    #[test]
    fn a_length_over_the_record_limit_is_torn() {
        let mut file = image(&[txn(1, 10)], 2 * BLOCK);
        let at = scan(&file, None).valid_end;
        file[at..at + 4].copy_from_slice(&(TXN_MAX as u32 + 1).to_be_bytes());
        let s = scan(&file, None);
        assert_eq!(s.txns.len(), 1);
        assert_eq!(s.end, End::Torn("record runs past the end"));
    }

    #[test]
    fn zxid_gap_is_a_torn_tail() {
        let mut txns: Vec<Txn> = (1..=3).map(|z| txn(z, 10)).collect();
        txns[2].zxid = 9;
        txns[2].op = TxnOp::Error(Code::NoNode);
        let file = image(&txns, 2 * BLOCK);
        let s = scan(&file, None);
        assert_eq!(s.txns.len(), 2);
        assert_eq!(s.end, End::Torn("zxid out of sequence"));
        assert_eq!(scan(&file, Some(5)).txns.len(), 0);
    }

    #[test]
    fn a_new_epoch_continues_the_sequence() {
        let e = |epoch: i64, n: i64| epoch << 32 | n;
        assert!(follows(e(0, 7), e(0, 8)));
        assert!(follows(e(0, 7), e(1, 1)));
        assert!(follows(e(1, 9), e(4, 1)));
        assert!(
            !follows(e(1, 9), e(2, 2)),
            "a new epoch starts at counter 1"
        );
        assert!(!follows(e(2, 9), e(1, 10)), "epochs do not go back");
        assert!(!follows(e(1, 9), e(1, 11)));
        let txns: Vec<Txn> = [e(0, 1), e(0, 2), e(3, 1), e(3, 2)]
            .into_iter()
            .map(|z| txn(z, 10))
            .collect();
        let file = image(&txns, 2 * BLOCK);
        let s = scan(&file, None);
        assert_eq!(s.txns.len(), 4);
        assert_eq!(scan(&file, Some(e(0, 0))).txns.len(), 4);
        // A segment that starts a new epoch follows the old one's last record.
        let later = image(&txns[2..], 2 * BLOCK);
        assert_eq!(scan(&later, Some(e(0, 2))).txns.len(), 2);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-xyz.log"), None);
        assert!(header_ok(&header()));
    }
}
