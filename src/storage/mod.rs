//! Durable storage: the write-ahead log's formats and recovery logic (pure), used by the write
//! core's log writer (`server::wal`). See docs/design/storage.md.

pub mod codec;
pub mod log;
pub mod recover;
pub mod snapshot;
