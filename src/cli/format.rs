//! zkCli's exact output: the stat layout (`StatPrinter`), Java's `Date.toString()`, the error
//! messages of `CliWrapperException` and `KeeperException`, permission strings (`ZKUtil`), the
//! jute `Id.toString()` that `getAcl` prints, and the quota records (`StatsTrack`).

use crate::proto::codes::Code;
use crate::proto::records::{Id, Stat};

/// `StatPrinter.print`.
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

extern "C" {
    /// POSIX; the libc crate does not declare it.
    fn tzset();
}

/// Java's `new Date(ms).toString()`: `EEE MMM dd HH:mm:ss zzz yyyy` in the local time zone.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own; tzset reads TZ.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        tzset();
        !libc::localtime_r(&secs, &mut tm).is_null()
    };
    if !ok {
        return format!("{ms}");
    }
    let zone = if tm.tm_zone.is_null() {
        "UTC".to_string()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated abbreviation owned by libc.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {} {}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        zone,
        tm.tm_year + 1900
    )
}

/// `KeeperException.getCodeMessage`.
pub fn code_message(c: Code) -> &'static str {
    match c {
        Code::Ok => "ok",
        Code::SystemError => "SystemError",
        Code::RuntimeInconsistency => "RuntimeInconsistency",
        Code::DataInconsistency => "DataInconsistency",
        Code::ConnectionLoss => "ConnectionLoss",
        Code::MarshallingError => "MarshallingError",
        Code::NewConfigNoQuorum => "NewConfigNoQuorum",
        Code::ReconfigInProgress => "ReconfigInProgress",
        Code::Unimplemented => "Unimplemented",
        Code::OperationTimeout => "OperationTimeout",
        Code::BadArguments => "BadArguments",
        Code::UnknownSession => "Unknown session",
        Code::ApiError => "APIError",
        Code::NoNode => "NoNode",
        Code::NoAuth => "NoAuth",
        Code::BadVersion => "BadVersion",
        Code::NoChildrenForEphemerals => "NoChildrenForEphemerals",
        Code::NodeExists => "NodeExists",
        Code::InvalidAcl => "InvalidACL",
        Code::AuthFailed => "AuthFailed",
        Code::NotEmpty => "Directory not empty",
        Code::SessionExpired => "Session expired",
        Code::InvalidCallback => "Invalid callback",
        Code::SessionMoved => "Session moved",
        Code::NotReadOnly => "Not a read-only call",
        Code::EphemeralOnLocalSession => "Ephemeral node on local session",
        Code::NoWatcher => "No such watcher",
        Code::RequestTimeout => "Request timeout",
        Code::ReconfigDisabled => "Reconfig is disabled",
        Code::SessionClosedRequireSaslAuth => {
            "Session closed because client failed to authenticate"
        }
        Code::QuotaExceeded => "Quota has exceeded",
        Code::ThrottledOp => "Op throttled due to high load",
    }
}

/// `KeeperException.getMessage()`.
pub fn keeper_message(c: Code, path: Option<&str>) -> String {
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {} for {p}", code_message(c)),
        _ => format!("KeeperErrorCode = {}", code_message(c)),
    }
}

/// `CliWrapperException`'s message for a server error on `path` (None: Java's null).
pub fn wrapper_message(c: Code, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    match c {
        Code::NoNode => format!("Node does not exist: {p}"),
        Code::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        Code::NodeExists => format!("Node already exists: {p}"),
        Code::NotEmpty => format!("Node not empty: {p}"),
        Code::NotReadOnly => format!("Not a read-only call: {p}"),
        Code::InvalidAcl => format!("Acl is not valid : {p}"),
        Code::NoAuth => format!("Insufficient permission : {p}"),
        Code::BadArguments => format!("Arguments are not valid : {p}"),
        Code::BadVersion => format!("version No is not valid : {p}"),
        Code::ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_string()
        }
        Code::NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with \
             the leader of last commmitted config - try invoking reconfiguration after new \
             servers are connected and synced"
            .to_string(),
        Code::QuotaExceeded => format!("Quota has exceeded : {p}"),
        _ => keeper_message(c, path),
    }
}

/// The jute-generated `Id.toString()` (a CSV record: `'scheme,'id` then a newline).
pub fn id_string(id: &Id) -> String {
    format!("'{},'{}\n", csv_string(&id.scheme), csv_string(&id.id))
}

/// jute's `Utils.toCSVString`: `,`, `\n`, `%`, `\r`, NUL escaped as %xx.
fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// ZooKeeper's `StatsTrack`: the `count=..,bytes=..` record of a quota's limits and stats
/// nodes, its keys kept in order of appearance.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsTrack {
    pub stats: Vec<(String, i64)>,
}

pub const COUNT: &str = "count";
pub const BYTES: &str = "bytes";
pub const COUNT_HARD: &str = "countHardLimit";
pub const BYTES_HARD: &str = "byteHardLimit";

impl StatsTrack {
    /// Parses `k=v` pairs separated by `,` or `;`; an empty value is -1. A malformed record is
    /// an error (ZooKeeper throws a NumberFormatException).
    pub fn parse(s: &str) -> Result<StatsTrack, String> {
        let mut t = StatsTrack::default();
        for pair in s.split([',', ';']).filter(|p| !p.is_empty()) {
            let kv = java_split_eq(pair);
            let (k, v) = match kv.as_slice() {
                [k] => (*k, "-1"),
                [k, v, ..] => (*k, if v.is_empty() { "-1" } else { *v }),
                [] => continue,
            };
            let v: i64 = v
                .parse()
                .map_err(|_| format!("For input string: \"{v}\""))?;
            t.set(k, v);
        }
        Ok(t)
    }

    pub fn get(&self, k: &str) -> i64 {
        self.stats
            .iter()
            .find(|(key, _)| key == k)
            .map_or(-1, |(_, v)| *v)
    }

    pub fn set(&mut self, k: &str, v: i64) {
        match self.stats.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v,
            None => self.stats.push((k.to_string(), v)),
        }
    }

    /// `StatsTrack.toString()`, quirks included: `count=..,bytes=..` and, when there are other
    /// keys, `=` and `;key=value` for each in sorted order.
    pub fn render(&self) -> String {
        let mut s = format!("{COUNT}={},{BYTES}={}", self.get(COUNT), self.get(BYTES));
        let mut rest: Vec<&(String, i64)> = self
            .stats
            .iter()
            .filter(|(k, _)| k != COUNT && k != BYTES)
            .collect();
        if !rest.is_empty() {
            s.push('=');
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in rest {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s
    }
}

/// Java's `"k=v".split("=")`: trailing empty strings dropped.
fn java_split_eq(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split('=').collect();
    while v.len() > 1 && v.last() == Some(&"") {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes::perms;

    #[test]
    fn stats_track_round_trips_with_zookeepers_quirks() {
        let mut t = StatsTrack::default();
        t.set(COUNT, 5);
        t.set(BYTES, -1);
        t.set(COUNT_HARD, -1);
        t.set(BYTES_HARD, -1);
        let s = t.render();
        assert_eq!(s, "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1");
        let back = StatsTrack::parse(&s).unwrap();
        assert_eq!(back.get(COUNT), 5);
        assert_eq!(back.get(BYTES), -1);
        assert_eq!(back.get(COUNT_HARD), -1);
        assert_eq!(
            StatsTrack::parse("count=0,bytes=0").unwrap().render(),
            "count=0,bytes=0"
        );
        assert!(StatsTrack::parse("count=x").is_err());
    }

    #[test]
    fn perms_and_ids_print_like_zookeeper() {
        assert_eq!(perms::letters(perms::ALL), "cdrwa");
        assert_eq!(perms::letters(perms::READ | perms::ADMIN), "ra");
        assert_eq!(id_string(&Id::new("world", "anyone")), "'world,'anyone\n");
    }

    #[test]
    fn errors_read_like_zkcli() {
        assert_eq!(
            wrapper_message(Code::NoNode, Some("/x")),
            "Node does not exist: /x"
        );
        assert_eq!(
            wrapper_message(Code::ConnectionLoss, Some("/x")),
            "KeeperErrorCode = ConnectionLoss for /x"
        );
        assert_eq!(
            wrapper_message(Code::InvalidAcl, None),
            "Acl is not valid : null"
        );
    }

    #[test]
    fn dates_in_javas_layout() {
        // Noon of 1 Jan 1970 UTC is 1 Jan in every zone within 12 hours of it.
        let d = java_date(12 * 3600 * 1000);
        assert!(d.starts_with("Thu Jan 01 "), "{d}");
        assert!(d.ends_with(" 1970"), "{d}");
        let time = d.split(' ').nth(3).unwrap();
        assert_eq!(time.len(), 8, "{d}");
    }
}
