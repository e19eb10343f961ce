//! Durable storage: the write-ahead log's and snapshots' formats and recovery logic (pure), used
//! by the write core's log writer (`server::wal`), and the dump tools' renderings. See
//! docs/design/storage.md.

pub(crate) mod codec;
pub mod dump;
pub(crate) mod epochs;
pub mod learner;
pub mod log;
mod mapped;
pub mod recover;
pub mod restore;
pub mod snapshot;
