//! A shard: one glommio executor pinned to one CPU, holding a read replica of the data tree, the
//! watches and sessions of the connections it accepted, and those connections. This file holds
//! the shard's state; start-up is in startup.rs, accepting in accept.rs, a connection's state in
//! conn.rs and its tasks in serve.rs, a request's dispatch in request.rs, reads in read.rs,
//! applying the write core's commits in commit.rs, four-letter reports in fourlw.rs.
//!
//! Everything here is owned by the shard's thread (`Rc<RefCell<_>>`, no locks). A borrow is
//! never held across an `.await`.
//!
//! Per-connection ordering (ZooKeeper's CommitProcessor rules, see docs/design/ordering.md):
//! requests of a connection are answered in the order they arrived. A read is served at once from
//! the replica when nothing is queued ahead of it; otherwise it waits in the connection's queue
//! behind the write, and runs when that write's commit has been applied here, so it sees the
//! write (read-your-writes). Watch events are appended to a connection's output the moment the
//! commit that fires them is applied, so an event always precedes any later reply that reflects
//! its change.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use async_channel::Sender;

use super::conn::ConnRef;
use super::{Shared, ToCore};
use crate::admin;
use crate::config::Config;
use crate::tree::DataTree;
use crate::watch::{ConnId, WatchManager};

/// A shard's read replica. Shard 0's is also the write core's committed tree when the two share
/// an executor (`write::Base::Shared`): only shard 0 changes it, by applying commits.
pub(crate) type Replica = Rc<RefCell<DataTree>>;

pub(super) struct Shard {
    pub(super) id: usize,
    pub(super) tree: Replica,
    pub(super) watches: WatchManager,
    pub(super) conns: HashMap<ConnId, ConnRef>,
    /// Sessions attached here -> their connection.
    pub(super) sessions: HashMap<i64, ConnId>,
    pub(super) touched: HashSet<i64>,
    /// Connections with a read waiting for this replica to catch up.
    pub(super) waiting: HashSet<ConnId>,
    pub(super) next_conn: ConnId,
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) latency: admin::Latency,
    /// Read and write latencies as histograms, for /metrics' quantiles (never reset).
    pub(super) latencies: crate::metrics::Latencies,
}

pub(super) type ShardRef = Rc<RefCell<Shard>>;

/// Everything a shard's tasks share that never changes after start.
pub(super) struct Env {
    pub(super) id: usize,
    pub(super) cfg: Arc<Config>,
    pub(super) to_core: Sender<ToCore>,
    pub(super) shared: Arc<Shared>,
    pub(super) per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
}
