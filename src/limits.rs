//! Every size bound that decides whether a write can be logged and recovered, named once and
//! tied to the others by compile-time assertions. Pure constants.
//!
//! The chain, from what a client sends to what recovery reads back:
//! - a request frame is at most `jute.maxbuffer` bytes, which the config caps at
//!   [`JUTE_MAX_BUFFER_MAX`];
//! - prep refuses a write whose txn would encode to more than [`TXN_MAX`] bytes (a txn can be
//!   larger than its request: `auth` ACLs expand to every id of the session, sequential names
//!   grow by ten digits), so every txn the write core proposes fits one log record;
//! - a log record carries up to [`TXN_MAX`] bytes after its [`RECORD_HEADER`], and recovery
//!   accepts exactly that much: a complete, checksummed record is never taken for a torn tail;
//! - a record never splits across segments: one larger than a segment's room makes that segment
//!   longer than [`SEGMENT_BYTES`];
//! - a batch stops taking requests once its records pass [`BATCH_BYTES`], so a group commit's
//!   memory is bounded by that plus one record;
//! - a snapshot node frame holds a path, data and ACL, each bounded by one request, and a walk
//!   step ends once its chunk passes [`SNAPSHOT_CHUNK_BYTES`];
//! - a quorum frame (a proposal carries one txn) is bounded by a jute int32 length.
//!
//! docs/design/storage.md ("Size bounds") says why each number is what it is.

/// ZooKeeper's `BinaryInputArchive.maxBuffer` default (just under 1 MiB): the largest request
/// frame, and so the largest znode, unless `jute.maxbuffer` says otherwise.
pub const JUTE_MAX_BUFFER_DEFAULT: u32 = 0xfffff;

/// The largest `jute.maxbuffer` corral accepts (256 MiB). ZooKeeper takes any int, but a znode
/// that large already strains every client; the cap keeps the chain below within int32 frames
/// and bounded memory. Users who raise the buffer (Kafka, HBase) use a few MiB up to ~200 MB.
pub const JUTE_MAX_BUFFER_MAX: u32 = 256 << 20;

/// The largest encoded txn (`storage::codec`): twice the largest request. A txn is a request
/// plus bookkeeping (times, versions, ten sequence digits); beyond that margin, which only
/// `auth`-scheme ACL expansion can reach, prep answers BadArguments before anything is applied.
pub const TXN_MAX: usize = 2 * JUTE_MAX_BUFFER_MAX as usize;

/// A log record's header: len:u32 crc:u32 zxid:i64.
pub const RECORD_HEADER: usize = 16;

/// A log segment's nominal size; the log rolls to a new segment after a flush passes it.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// A batch of the write core takes no more requests once its log records reach this many bytes.
pub const BATCH_BYTES: usize = 4 << 20;

/// Most requests one batch of the write core takes (group commit), whatever their size.
pub const BATCH_MAX: usize = 1024;

/// A snapshot walk step ends once its chunk reaches this many bytes (or `NODES_PER_STEP`
/// nodes), so a tree of large nodes does not make one step hold many of them.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;

/// Bytes a snapshot node frame adds to its path, data and ACL (tag, length prefixes, the stat).
pub const SNAPSHOT_NODE_OVERHEAD: usize = 128;

/// Log records recovery keeps in memory (`storage::recover::Recovered::recent`) so a leader
/// can bring a learner up to date with a DIFF: ZooKeeper's `committedLog` holds as many.
pub const RECENT_RECORDS: usize = 500;

/// The largest frame between ensemble members: a jute int32 length.
pub const QUORUM_FRAME_MAX: usize = i32::MAX as usize;

/// Bytes a proposal adds to its txn (type, zxid, length prefix, frame header).
pub const QUORUM_PROPOSAL_OVERHEAD: usize = 64;

// The default buffer is within the cap.
const _: () = assert!(JUTE_MAX_BUFFER_DEFAULT <= JUTE_MAX_BUFFER_MAX);
// A whole record's length fits the record header's u32 (with the header itself).
const _: () = assert!(RECORD_HEADER + TXN_MAX <= u32::MAX as usize);
// Any txn can be proposed to followers in one quorum frame.
const _: () = assert!(TXN_MAX + QUORUM_PROPOSAL_OVERHEAD <= QUORUM_FRAME_MAX);
// A node's path, data and ACL each came in one request: the frame length is a u32.
const _: () =
    assert!(3 * JUTE_MAX_BUFFER_MAX as usize + SNAPSHOT_NODE_OVERHEAD <= u32::MAX as usize);
// A segment holds several full batches, so rolling stays rare and a segment of small records
// ends within one batch of its nominal size.
const _: () = assert!(BATCH_BYTES as u64 <= SEGMENT_BYTES / 4);
// A chunk is small next to the batch a snapshot step runs between.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES <= BATCH_BYTES);
