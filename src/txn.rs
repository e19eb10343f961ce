//! Transactions: fully determined state changes. The write core turns a request into a `Txn`
//! (see `prep`); every replica applies the same `Txn` with `DataTree::apply` and reaches the same
//! tree, the same watch triggers and the same per-op results. Nothing in a `Txn` depends on the
//! replica that applies it: names of sequential nodes, versions, the parent's new cversion,
//! timestamps and the ephemerals a closing session owns are all decided before it is broadcast.

use crate::proto::codes::Code;
use crate::proto::records::Acl;

/// Znode data as txns and trees hold it: one allocation, shared by the txn and every replica
/// that applies it (a clone copies no bytes). 16 bytes where it is held, against `Bytes`' 32.
pub type Data = std::sync::Arc<[u8]>;

/// A transaction with the header ZooKeeper's `TxnHeader` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    /// Wall-clock milliseconds chosen by the write core: becomes ctime/mtime.
    pub time_ms: i64,
    pub op: TxnOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    CreateSession {
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Ends the session and deletes every ephemeral it owns at this point of the log. Every
    /// replica holds the same set there, so the txn need not list them (a list made the record
    /// grow with the session's ephemerals, past any record limit: docs/design/storage.md).
    CloseSession,
    Create {
        /// The opcode the client used (create, create2, createContainer, createTTL): decides the
        /// reply shape.
        opcode: i32,
        path: String,
        data: Option<Data>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        /// The parent's internal cversion after this create (count of creates under it).
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Data>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
    },
    /// A successful multi: every op applies.
    Multi(Vec<TxnOp>),
    /// A failed multi: nothing applies; the per-op codes are ZooKeeper's layout (Ok before the
    /// failing op, its error, RuntimeInconsistency after).
    MultiError(Vec<Code>),
    /// A failed write. ZooKeeper logs these too, so they consume a zxid.
    Error(Code),
}

impl TxnOp {
    /// Changes the tree or session table (as opposed to error/check-only txns).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            TxnOp::Error(_) | TxnOp::MultiError(_) | TxnOp::Check { .. }
        )
    }
}
