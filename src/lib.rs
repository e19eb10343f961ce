//! corral: a ZooKeeper-compatible coordination server, thread-per-core on io_uring.
//!
//! Pure parts (no I/O): `proto` (wire codec), `tree` (data tree, ACLs), `txn`, `overlay`
//! (what the write core checks against: the committed tree and what is proposed on it), `prep`
//! (request -> txn), `session` (expiry tracking), `write` (the write machine: the write core's
//! logic), `watch` (shard-local watch registry), `zab` (replication), `config` (zoo.cfg and
//! flags), `admin` (four-letter-word formats), `tls` (TLS settings, stores and rustls configs; x509
//! subject names), `logging` (the log's format and runtime level). The runtime (`server`) is
//! the only place that knows about glommio, sockets and cores; `http` is the small threaded
//! HTTP/1.1 server the admin and metrics endpoints run on, beside it. See docs/ARCHITECTURE.md.

pub(crate) mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub(crate) mod overlay;
pub(crate) mod prep;
pub mod proto;
pub mod quota;
pub mod server;
pub(crate) mod session;
pub mod storage;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod write;
pub mod zab;
pub mod zkfiles;
