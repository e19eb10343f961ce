//! Quotas as ZooKeeper keeps them, in the tree itself (`Quotas`, `StatsTrack`, the quota parts
//! of `DataTree` and `ZooKeeperServer.checkQuota`). Pure: paths and node data in, paths and node
//! data out; the tree (`tree::DataTree`, on apply) and the write core (`overlay::View`, on prep)
//! both call these, so the two agree byte for byte on every stat node.
//!
//! ```text
//! /zookeeper/quota<path>/zookeeper_limits   written by clients (zkCli setquota):
//!     count=N,bytes=B[=;byteHardLimit=BH;countHardLimit=NH]   (-1: no limit)
//! /zookeeper/quota<path>/zookeeper_stats    kept by the server:
//!     count=N,bytes=B                         (nodes and data bytes of <path>'s subtree)
//! stats = pair ([,;]+ pair)*     pair = key "=" value ["=" ...]     value = i64 | ""  ("" is -1)
//! ```
//!
//! `<path>` has a quota while its limit node exists. A write to a node counts against the
//! deepest such path among the node and its ancestors (`/` never has one). Creating a stat node
//! makes the server count the subtree as it is then (whatever the client wrote into it); after
//! that each create, delete and setData below `<path>` adds its change to the counts. The
//! counts are a function of the txns applied, so every replica holds the same; a replica that
//! loads a snapshot counts each quota's subtree again (`DataTree::setup_quotas`), which is the
//! same number unless a client wrote the stat node itself (ZooKeeper behaves the same).

use std::collections::BTreeMap;

/// The node under which quotas live.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The name of the node holding a path's limits.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// The name of the node holding a path's usage.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD_LIMIT: &str = "countHardLimit";
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// `/zookeeper/quota<path>/zookeeper_limits`.
pub fn limit_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{LIMIT_NODE}")
}

/// `/zookeeper/quota<path>/zookeeper_stats`.
pub fn stat_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{STAT_NODE}")
}

/// The path whose subtree a stat node at `path` counts, if `path` names one: creating it makes
/// the server count that subtree. `/zookeeper/quota/zookeeper_stats` counts the whole tree, as
/// ZooKeeper's does (its tree maps "" to the root).
pub fn counted_by_stat_node(path: &str) -> Option<&str> {
    let parent = path.strip_suffix(STAT_NODE)?.strip_suffix('/')?;
    let real = parent.strip_prefix(QUOTA_ROOT)?;
    if real.is_empty() {
        Some("/")
    } else if real.starts_with('/') {
        Some(real)
    } else {
        None
    }
}

/// The path a write to `path` counts against: the deepest of `path` and its ancestors, other
/// than `/`, for which `has_limit` says a limit node exists.
pub fn prefix_of(path: &str, has_limit: impl Fn(&str) -> bool) -> Option<String> {
    let mut p = path;
    while p.len() > 1 {
        if has_limit(p) {
            return Some(p.to_string());
        }
        p = crate::tree::parent_of(p);
    }
    None
}

/// ZooKeeper's `StatsTrack`: the `key=value` pairs of a limit or stat node, a missing key
/// reading as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    /// Sorted, as ZooKeeper sorts the keys after `count` and `bytes` when it writes them.
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Reads node data; `None` where ZooKeeper's parser would throw (a pair without `=` or a
    /// value that is not a number). Null or empty data has no pairs.
    pub fn parse(data: Option<&[u8]>) -> Option<StatsTrack> {
        let text = std::str::from_utf8(data.unwrap_or_default()).ok()?;
        let mut stats = BTreeMap::new();
        if text.is_empty() {
            return Some(StatsTrack { stats });
        }
        // Java splits on `[,;]+` and drops trailing empty strings: a run of separators is
        // one, a leading separator makes an empty first pair (which it fails on).
        for (i, pair) in text.split([',', ';']).enumerate() {
            if pair.is_empty() {
                if i == 0 {
                    return None;
                }
                continue;
            }
            let mut kv: Vec<&str> = pair.split('=').collect();
            while kv.last() == Some(&"") {
                kv.pop();
            }
            if kv.len() < 2 {
                return None;
            }
            let value = if kv[1].is_empty() {
                -1
            } else {
                kv[1].parse::<i64>().ok()?
            };
            stats.insert(kv[0].to_string(), value);
        }
        Some(StatsTrack { stats })
    }

    fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }

    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT)
    }

    /// Usage as the server writes it when it counts a subtree: `count=N,bytes=B`.
    pub fn usage(count: i64, bytes: i64) -> StatsTrack {
        let mut s = StatsTrack::default();
        s.stats.insert(COUNT.into(), count);
        s.stats.insert(BYTES.into(), bytes);
        s
    }

    /// Adds a write's change to usage (ZooKeeper's `updateQuotaStat`; other keys are kept).
    pub fn add(&mut self, count: i64, bytes: i64) {
        let (c, b) = (self.count(), self.bytes());
        self.stats.insert(COUNT.into(), c.wrapping_add(count));
        self.stats.insert(BYTES.into(), b.wrapping_add(bytes));
    }

    /// ZooKeeper's `toString`: `count` then `bytes`, then, after an `=` that old parsers skip,
    /// the other keys sorted, each after a `;`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{COUNT}={},{BYTES}={}", self.count(), self.bytes());
        let rest: Vec<_> = self
            .stats
            .iter()
            .filter(|(k, _)| *k != COUNT && *k != BYTES)
            .collect();
        if !rest.is_empty() {
            s.push('=');
            for (k, v) in rest {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s.into_bytes()
    }
}

/// One limit a write would pass, as ZooKeeper's `checkQuota` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The log line ZooKeeper writes: `Quota exceeded: /a [current count=3, softCountLimit=2]`.
    pub message: String,
    /// A hard limit: the write fails with QUOTAEXCEEDED where quotas are enforced.
    pub hard: bool,
}

/// ZooKeeper's `checkQuota(lastPrefix, bytesDiff, countDiff)`: the limits a write that changes
/// `prefix`'s usage by `count`/`bytes` passes, count first. A hard limit takes precedence over
/// the soft one of the same kind, and a kind the write does not change is not checked.
pub fn check(
    prefix: &str,
    limits: &StatsTrack,
    usage: &StatsTrack,
    count: i64,
    bytes: i64,
) -> Vec<Exceeded> {
    let mut out = Vec::new();
    let mut one = |what: &str, diff: i64, now: i64, soft: i64, hard: i64, name: &str| {
        if diff == 0 || (soft <= -1 && hard <= -1) {
            return;
        }
        let new = now.wrapping_add(diff);
        let is_hard = hard > -1;
        let limit = if is_hard { hard } else { soft };
        if new > limit {
            out.push(Exceeded {
                message: format!(
                    "Quota exceeded: {prefix} [current {what}={new}, {}{name}={limit}]",
                    if is_hard { "hard" } else { "soft" }
                ),
                hard: is_hard,
            });
        }
    };
    one(
        "count",
        count,
        usage.count(),
        limits.count(),
        limits.count_hard_limit(),
        "CountLimit",
    );
    one(
        "bytes",
        bytes,
        usage.bytes(),
        limits.bytes(),
        limits.byte_hard_limit(),
        "ByteLimit",
    );
    out
}

/// ZooKeeper's per-namespace quota gauges (`QuotaMetricsUtils`), as `mntr` prints them after
/// `zk_`: for each top-level namespace with a quota below it, the sum over its limit nodes of
/// the count and bytes limits (a hard limit where set, else the soft one) and over its stat
/// nodes of the usage. Only limit and stat nodes without children count, as there; data that
/// does not parse is skipped. Sorted by metric, then namespace.
pub fn namespace_metrics(tree: &crate::tree::DataTree) -> Vec<(String, i64)> {
    use crate::tree::name_of;
    let Some(root) = tree.get(QUOTA_ROOT) else {
        return Vec::new();
    };
    if root.num_children() == 0 {
        return Vec::new();
    }
    // metric -> namespace -> sum
    let mut sums: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    let mut todo = vec![QUOTA_ROOT.to_string()];
    while let Some(path) = todo.pop() {
        let Some(node) = tree.get(&path) else {
            continue;
        };
        if node.num_children() > 0 {
            todo.extend(tree.child_names(node).map(|c| crate::tree::join(&path, c)));
            continue;
        }
        let name = name_of(&path);
        let ns = match path[QUOTA_ROOT.len()..].split('/').nth(1) {
            Some(ns) => ns.to_string(),
            None => continue,
        };
        let (Some(data), true) = (node.data(), name == LIMIT_NODE || name == STAT_NODE) else {
            continue;
        };
        let Some(s) = StatsTrack::parse(Some(data)) else {
            continue;
        };
        let limit = |hard: i64, soft: i64| if hard > -1 { hard } else { soft };
        let values = if name == LIMIT_NODE {
            [
                (
                    "quota_count_limit_per_namespace",
                    limit(s.count_hard_limit(), s.count()),
                ),
                (
                    "quota_bytes_limit_per_namespace",
                    limit(s.byte_hard_limit(), s.bytes()),
                ),
            ]
        } else {
            [
                ("quota_count_usage_per_namespace", s.count()),
                ("quota_bytes_usage_per_namespace", s.bytes()),
            ]
        };
        for (metric, v) in values {
            let sum = sums
                .entry(metric)
                .or_default()
                .entry(ns.clone())
                .or_insert(0);
            *sum = sum.wrapping_add(v);
        }
    }
    let mut out = Vec::new();
    for (metric, by_ns) in sums {
        for (ns, v) in by_ns {
            out.push((format!("{ns}_{metric}"), v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<StatsTrack> {
        StatsTrack::parse(Some(s.as_bytes()))
    }

    #[test]
    fn formats_as_zookeeper_writes_them() {
        // What zkCli writes for `setquota -n 2 /a` (3.7+), and reads back.
        let mut l = StatsTrack::default();
        for (k, v) in [
            (COUNT, 2),
            (BYTES, -1),
            (COUNT_HARD_LIMIT, -1),
            (BYTE_HARD_LIMIT, -1),
        ] {
            l.stats.insert(k.into(), v);
        }
        let text = "count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1";
        assert_eq!(String::from_utf8(l.to_bytes()).unwrap(), text);
        assert_eq!(parse(text), Some(l));
        assert_eq!(StatsTrack::usage(3, 10).to_bytes(), b"count=3,bytes=10");
        let old = parse("count=5,bytes=7").unwrap();
        assert_eq!(
            (old.count(), old.bytes(), old.count_hard_limit()),
            (5, 7, -1)
        );
        assert_eq!(parse("count==5,bytes=4").unwrap().count(), -1);
        assert_eq!(parse("count=,bytes=4"), None);
        assert_eq!(parse(",count=1"), None);
        assert_eq!(parse("count=1;;bytes=2,").unwrap().bytes(), 2);
        assert_eq!(StatsTrack::parse(None), Some(StatsTrack::default()));
        assert_eq!(parse("count"), None);
        assert_eq!(parse("count=x"), None);
        let mut s = parse("count=1,bytes=2=;countHardLimit=9").unwrap();
        s.add(1, -2);
        assert_eq!(s.to_bytes(), b"count=2,bytes=0=;countHardLimit=9");
    }

    #[test]
    fn paths() {
        assert_eq!(limit_path("/a/b"), "/zookeeper/quota/a/b/zookeeper_limits");
        assert_eq!(stat_path("/a"), "/zookeeper/quota/a/zookeeper_stats");
        assert_eq!(
            counted_by_stat_node("/zookeeper/quota/a/b/zookeeper_stats"),
            Some("/a/b")
        );
        assert_eq!(
            counted_by_stat_node("/zookeeper/quota/zookeeper_stats"),
            Some("/")
        );
        assert_eq!(
            counted_by_stat_node("/zookeeper/quotax/zookeeper_stats"),
            None
        );
        assert_eq!(counted_by_stat_node("/a/zookeeper_stats"), None);
        let has = |p: &str| p == "/a" || p == "/a/b/c";
        assert_eq!(prefix_of("/a/b/c/d", has).as_deref(), Some("/a/b/c"));
        assert_eq!(prefix_of("/a/b", has).as_deref(), Some("/a"));
        assert_eq!(prefix_of("/a", has).as_deref(), Some("/a"));
        assert_eq!(prefix_of("/b", has), None);
        assert_eq!(prefix_of("/", |_| true), None);
    }

    #[test]
    fn checks_as_zookeeper_does() {
        let limits = parse("count=2,bytes=-1=;byteHardLimit=10;countHardLimit=-1").unwrap();
        let usage = StatsTrack::usage(2, 8);
        let e = check("/a", &limits, &usage, 1, 3);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].message,
            "Quota exceeded: /a [current count=3, softCountLimit=2]"
        );
        assert!(!e[0].hard);
        assert_eq!(
            e[1].message,
            "Quota exceeded: /a [current bytes=11, hardByteLimit=10]"
        );
        assert!(e[1].hard);
        // Unchanged kinds are not checked; at the limit is within it.
        assert!(check("/a", &limits, &usage, 0, 2).is_empty());
        assert!(check("/a", &StatsTrack::default(), &usage, 5, 5).is_empty());
    }
}
