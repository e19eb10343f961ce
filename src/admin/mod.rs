//! Four-letter words ("4lw"): recognition, the whitelist, and byte-exact rendering of
//! ZooKeeper 3.8/3.9's text replies. Rendering only: the runtime collects the numbers
//! into the plain structs of `data` and sends back what `render` returns, then closes.
//!
//! Wire: a 4lw shares the client port. On a fresh connection the first 4 bytes, which a
//! real client sends as its int32 length prefix, are compared with the known words
//! (`FourLetter::from_len_prefix`); on a match the server answers in text, UTF-8, and
//! closes the connection. `stmk` alone reads 8 more bytes: the new mask, a big-endian
//! int64. ZooKeeper also knows the telnet close sequence and simply closes on it.
//!
//! The parts, one job each; each uses only parts below it in this list (and the constants
//! here):
//! - `render`: the replies, byte for byte, from the facts in `data`.
//! - `probe`: the /proc readers the runtime may call to fill `ServerStats` and `EnvInfo`,
//!   the only I/O here.
//! - `words`: the known words and the whitelist rule.
//! - `data`: the plain structs the runtime fills (and ZooKeeper's arithmetic on them).
//! - `java`: Java's number, date and address formats that the replies reproduce.
//!
//! Decisions:
//! - Version: corral reports `<ZOOKEEPER_COMPAT_VERSION>-corral-<crate version>, built on
//!   <date>` wherever ZooKeeper prints `Version.getFullVersion()` (`srvr`, `stat`,
//!   `envi`, `mntr`). Tools parse `\d+\.\d+\.\d+` from the front to gate features, and
//!   ZooKeeper's own format is `<version>-<git hash>, built on <date>`.
//! - `envi` keeps ZooKeeper's key set and order; `java.*` keys print `<NA>`, which is what
//!   ZooKeeper itself prints for a missing system property. `os.memory.*` become
//!   MemAvailable / MemTotal / process RSS. Extra keys (`corral.*`) follow.
//! - `mntr` prints ZooKeeper 3.6+'s first two keys (`zk_version`, `zk_server_state`), then
//!   the classic gauges in their 3.4 order, the leader gauges of 3.6+, then any
//!   `corral_*` lines. ZooKeeper 3.6+ also prints dozens of metrics-registry keys in hash
//!   order; monitoring tools look keys up by name, so those are left out.
//! - Dates (`dump`) are printed as Java's `Date.toString()` does, in UTC.
//! - `hash`: corral keeps no digest history yet, so it answers exactly as ZooKeeper does
//!   with `digest.enabled=false`: nothing.

pub mod commands;
mod data;
mod java;
pub mod json;
pub mod probe;
mod render;
mod settings;
mod words;

pub use data::{
    last_op_name, AdminData, ConnectionInfo, ExpiryBucket, Latency, LeaderStats, ObserverInfo,
    ServerMode, ServerStats, StorageFigures,
};
pub use java::java_date_utc;
pub use render::render;
pub use settings::{AdminServerSettings, Applied};
pub use words::{is_allowed, refusal, FourLetter};

// ---------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------

/// The ZooKeeper release whose behaviour corral presents to clients and tools.
pub const ZOOKEEPER_COMPAT_VERSION: &str = "3.9.2";
/// Set `CORRAL_BUILD_DATE` at build time (e.g. `2025-01-31 12:00 UTC`, ZooKeeper's form).
const BUILD_DATE: &str = match option_env!("CORRAL_BUILD_DATE") {
    Some(date) => date,
    None => "unknown",
};
/// What every command but `ruok`, `envi`, `gtmk`, `stmk` answers while the server is not
/// serving (e.g. a quorum member during leader election).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";
/// ZooKeeper's default trace mask: client requests | server packets | sessions | warnings.
pub const TRACE_MASK_DEFAULT: i64 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8);
/// `SelectionKey.OP_READ`, the interest set of an idle connection in `cons`/`stat`.
pub const INTEREST_OPS_READ: u32 = 1;
/// A connection's last operation before any response, as after ZooKeeper's `resetStats`.
pub const LAST_OP_NONE: &str = "NA";
/// Java's default for a missing system property, used for the `java.*` keys of `envi`.
const ENV_NA: &str = "<NA>";

/// `Version.getFullVersion()` for corral.
pub fn full_version() -> String {
    format!(
        "{ZOOKEEPER_COMPAT_VERSION}-corral-{}, built on {BUILD_DATE}",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string() {
        let v = full_version();
        assert!(v.starts_with("3.9.2-corral-"), "{v}");
        assert!(v.contains(", built on "), "{v}");
        // kazoo's server_version() regex on envi: zookeeper.version=(\d+)\.(\d+)\.(\d+)-.*
        let nums: Vec<&str> = v.split('-').next().unwrap().split('.').collect();
        assert!(nums.len() == 3 && nums.iter().all(|n| n.parse::<u32>().is_ok()));
    }
}
