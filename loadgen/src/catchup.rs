//! `loadgen catchup`: how long a restarted member of a running three-member ensemble (corral or
//! ZooKeeper alike) takes to catch up after missing N writes.
//!
//! It finds the leader and a follower F with `srvr`, creates the key znodes (so the creates are
//! not part of what F misses), SIGKILLs F and waits until it is gone, then sends N setData
//! through the two survivors, pipelined over a few sessions each. The highest zxid in the reply
//! headers is the target. Then it spawns the --restart command, detached, and polls F with `srvr`
//! from that instant t0:
//! - serving: until F first answers with `Mode: follower` (or observer);
//! - caught up: until such an answer also says `Zxid:` >= the target.
//!
//! Then a fresh session on F reads the znode of the last write (highest mzxid) and checks that
//! its version, mzxid and data are the ones that write produced: the data is there for a client,
//! not only counted. Plain threads and blocking sockets, as in `failover`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use corral::proto::codes::op;
use corral::proto::records::Stat;

use crate::failover::{ms, srvr_field, srvr_text, wait_ready};
use crate::setup::Blocking;
use crate::stats::now_ns;
use crate::wire;

#[derive(Args, Debug)]
pub struct CatchupArgs {
    /// Client addresses of the three members, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub members: Vec<String>,
    /// PIDs of the members, in the order of --members (the follower's gets SIGKILL).
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<i32>,
    /// Shell command (run with `sh -c`, detached, in a process group of its own) that starts
    /// the killed member again; `{sid}` in it becomes the member's 1-based index in --members.
    #[arg(long, required = true)]
    pub restart: String,
    /// setData requests the killed member misses.
    #[arg(long, default_value_t = 100_000)]
    pub writes: usize,
    /// Bytes of data per write.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Key znodes under --root, written round-robin.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Parent of the key znodes (created if missing; one level).
    #[arg(long, default_value = "/loadgen-catchup")]
    pub root: String,
    /// Writing sessions per surviving member.
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Requests in flight per writing session.
    #[arg(long, default_value_t = 32)]
    pub outstanding: usize,
    /// Name of the system in the output (corral, zookeeper).
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Seconds to wait for one leader and two followers before starting.
    #[arg(long, default_value_t = 60.0)]
    pub ready_limit: f64,
    /// Milliseconds between `srvr` polls of the restarted member.
    #[arg(long, default_value_t = 2)]
    pub poll_ms: u64,
    /// Seconds after the restart before the run is declared failed (exit status 3).
    #[arg(long, default_value_t = 120.0)]
    pub limit: f64,
    /// One JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// The write with the highest mzxid: the last one applied, so its stat is its znode's final one.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    mzxid: i64,
    n: usize,
    version: i32,
}

/// What one writing session saw.
#[derive(Default)]
struct Tally {
    acked: usize,
    max_zxid: i64,
    last: Last,
    errors: BTreeMap<String, u64>,
}

/// The data of write number `n`: its number, zero-padded to the payload size, so the read can
/// tell which write it sees.
fn data(n: usize, payload: usize) -> Vec<u8> {
    let mut d = format!("{n:0payload$}").into_bytes();
    d.truncate(payload);
    d
}

fn key(root: &str, n: usize, keys: usize) -> String {
    format!("{root}/k{}", n % keys.max(1))
}

/// Session `s` of `total` writes numbers s, s + total, s + 2 total, ... below `writes`.
fn write_session(addr: SocketAddr, s: usize, total: usize, a: &Cfg) -> Tally {
    let mut t = Tally::default();
    let count = a.writes.saturating_sub(s).div_ceil(total);
    let res = Blocking::connect(addr, Duration::from_secs(5)).and_then(|mut b| {
        b.window(
            count,
            a.outstanding,
            |out, xid, i| {
                let n = s + i * total;
                wire::set_data(out, xid, &key(&a.root, n, a.keys), &data(n, a.payload), -1)
            },
            |i, mut r| {
                if r.err != 0 {
                    *t.errors.entry(wire::code_name(r.err)).or_default() += 1;
                    return Ok(());
                }
                let st = Stat::decode(&mut r.body).map_err(|_| "setData reply: decode")?;
                t.acked += 1;
                t.max_zxid = t.max_zxid.max(r.zxid);
                if st.mzxid > t.last.mzxid {
                    t.last = Last {
                        mzxid: st.mzxid,
                        n: s + i * total,
                        version: st.version,
                    };
                }
                Ok(())
            },
        )?;
        b.close();
        Ok(())
    });
    if let Err(e) = res {
        *t.errors.entry(e).or_default() += 1;
    }
    t
}

struct Cfg {
    writes: usize,
    payload: usize,
    keys: usize,
    root: String,
    outstanding: usize,
}

/// Whether `pid` is gone: no such process, or a zombie (dead, not yet reaped by its parent, and
/// already rid of its sockets and files).
fn gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(st) => st
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|c| c == 'Z' || c == 'X'),
    }
}

/// A `srvr` answer's zxid (`Zxid: 0x...`).
fn zxid_of(text: &str) -> Option<i64> {
    let z = srvr_field(text, "Zxid")?;
    u64::from_str_radix(z.strip_prefix("0x")?, 16)
        .ok()
        .map(|z| z as i64)
}

fn serving(text: &str) -> bool {
    matches!(srvr_field(text, "Mode"), Some("follower" | "observer"))
}

/// getData of `path` through a fresh session on `addr`: whether it returns `want`'s data,
/// version and mzxid.
fn read_back(addr: SocketAddr, path: &str, want: &Last, payload: usize) -> Result<(), String> {
    let mut b = Blocking::connect(addr, Duration::from_secs(5))?;
    let mut got = Err("no reply".to_string());
    b.window(
        1,
        1,
        |out, xid, _| wire::read_req(out, xid, op::GET_DATA, path, false),
        |_, mut r| {
            got = if r.err != 0 {
                Err(wire::code_name(r.err))
            } else {
                let d = r.body.buffer().map_err(|_| "getData reply: decode")?;
                let st = Stat::decode(&mut r.body).map_err(|_| "getData reply: decode")?;
                let ok = st.version == want.version
                    && st.mzxid == want.mzxid
                    && d[..] == data(want.n, payload)[..];
                ok.then_some(()).ok_or(format!(
                    "version {} mzxid 0x{:x} data {:?}, expected version {} mzxid 0x{:x} write {}",
                    st.version,
                    st.mzxid,
                    String::from_utf8_lossy(&d),
                    want.version,
                    want.mzxid,
                    want.n
                ))
            };
            Ok(())
        },
    )?;
    b.close();
    got
}

/// Runs the measurement; returns its report and whether it succeeded.
pub fn run(a: &CatchupArgs) -> Result<(String, bool), String> {
    if a.members.len() != 3 || a.pids.len() != 3 {
        return Err("need exactly three --members and three --pids".into());
    }
    if a.writes == 0 || a.sessions == 0 {
        return Err("--writes and --sessions must be > 0".into());
    }
    let addrs = crate::resolve(&a.members)?;
    let _ = now_ns();

    let leader = wait_ready(&addrs, a.ready_limit)?;
    let f = (0..3).find(|&i| i != leader).unwrap();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != f).collect();

    // The keys, through the leader, while F is still up: F misses only the setData.
    let mut b = Blocking::connect(addrs[leader], Duration::from_secs(5))?;
    b.ensure(std::slice::from_ref(&a.root))?;
    let keys: Vec<String> = (0..a.keys.max(1))
        .map(|k| key(&a.root, k, a.keys))
        .collect();
    b.ensure(&keys)?;
    b.close();

    let pid = a.pids[f];
    // SAFETY: kill has no memory-safety preconditions; the PID is the caller's member.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(format!(
            "kill -9 {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let t = now_ns();
    while !gone(pid) {
        if now_ns() - t > 10_000_000_000 {
            return Err(format!(
                "member {} (pid {pid}) still there 10 s after SIGKILL",
                f + 1
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // The missed writes.
    let cfg = Arc::new(Cfg {
        writes: a.writes,
        payload: a.payload,
        keys: a.keys,
        root: a.root.clone(),
        outstanding: a.outstanding,
    });
    let total = a.sessions * survivors.len();
    let w0 = now_ns();
    let threads: Vec<_> = (0..total)
        .map(|s| {
            let (addr, cfg) = (addrs[survivors[s % survivors.len()]], cfg.clone());
            std::thread::spawn(move || write_session(addr, s, total, &cfg))
        })
        .collect();
    let tallies: Vec<Tally> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let write_ns = now_ns() - w0;
    let acked: usize = tallies.iter().map(|t| t.acked).sum();
    let target = tallies.iter().map(|t| t.max_zxid).max().unwrap_or(0);
    let last = tallies
        .iter()
        .map(|t| t.last)
        .max_by_key(|l| l.mzxid)
        .unwrap_or_default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in &tallies {
        for (k, v) in &t.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let write_ms = ms(write_ns);
    let write_rate = (acked as f64 / (write_ns as f64 / 1e9)).round();
    let report = |restart_pid: Option<u32>,
                  serving_ms: Option<f64>,
                  caught_up_ms: Option<f64>,
                  read: &Result<(), String>,
                  ok: bool| {
        if a.json {
            serde_json::json!({
                "label": a.label,
                "writes": acked,
                "write_ms": write_ms,
                "write_rate": write_rate,
                "target_zxid": format!("0x{target:x}"),
                "member": f + 1,
                "leader": leader + 1,
                "restart_pid": restart_pid,
                "serving_ms": serving_ms,
                "caught_up_ms": caught_up_ms,
                "read_ok": read.is_ok(),
                "ok": ok,
                "errors": errors,
            })
            .to_string()
                + "\n"
        } else {
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| v.to_string());
            format!(
                "{}: member {} missed {acked} writes ({write_ms} ms, {write_rate}/s, target zxid \
                 0x{target:x}); restart pid {}: serving {} ms, caught up {} ms, read {}{}\n",
                a.label,
                f + 1,
                restart_pid.map_or("-".into(), |p| p.to_string()),
                opt(serving_ms),
                opt(caught_up_ms),
                match read {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("failed: {e}"),
                },
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" !!! errors {errors:?}")
                },
            )
        }
    };
    if !errors.is_empty() || acked != a.writes {
        let read = Err("not tried: the writes failed".to_string());
        return Ok((report(None, None, None, &read, false), false));
    }

    // The restart, detached: its own process group (so `kill -- -PID` stops all of it), no
    // stdio of ours, never waited for.
    let cmd = a.restart.replace("{sid}", &(f + 1).to_string());
    let t0 = now_ns();
    let child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("sh -c {cmd:?}: {e}"))?;
    let restart_pid = child.id();
    drop(child);

    let (mut serving_at, mut caught_at) = (None, None);
    let limit = t0 + (a.limit * 1e9) as u64;
    let every = Duration::from_millis(a.poll_ms);
    while now_ns() < limit {
        let t = now_ns();
        if let Some(text) = srvr_text(addrs[f], Duration::from_millis(500)) {
            let at = now_ns();
            if serving(&text) {
                serving_at.get_or_insert(at);
                if zxid_of(&text).is_some_and(|z| z >= target) {
                    caught_at = Some(at);
                    break;
                }
            }
        }
        std::thread::sleep(every.saturating_sub(Duration::from_nanos(now_ns() - t)));
    }
    let read = match caught_at {
        Some(_) => read_back(addrs[f], &key(&a.root, last.n, a.keys), &last, a.payload),
        None => Err(format!("not caught up within {} s", a.limit)),
    };
    let ok = caught_at.is_some() && read.is_ok();
    let out = report(
        Some(restart_pid),
        serving_at.map(|t| ms(t - t0)),
        caught_at.map(|t| ms(t - t0)),
        &read,
        ok,
    );
    Ok((out, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_answers() {
        let text = "Zookeeper version: 3.8.4\nLatency min/avg/max: 0/0.0/0\nZxid: 0x1000000a5\n\
                    Mode: follower\nNode count: 5\n";
        assert_eq!(zxid_of(text), Some(0x1_0000_00a5));
        assert!(serving(text));
        assert!(!serving("Zxid: 0x5\nMode: leader\n"));
        let not = "This ZooKeeper instance is not currently serving requests\n";
        assert!(!serving(not));
        assert_eq!(zxid_of(not), None);
    }

    #[test]
    fn data_names_its_write() {
        assert_eq!(data(42, 5), b"00042");
        assert_eq!(data(42, 0), b"");
        assert_ne!(data(7, 100), data(8, 100));
    }

    #[test]
    fn sessions_share_out_every_write_once() {
        let (writes, total) = (10, 4);
        let mut all: Vec<usize> = (0..total)
            .flat_map(|s| {
                let count = usize::saturating_sub(writes, s).div_ceil(total);
                (0..count).map(move |i| s + i * total)
            })
            .collect();
        all.sort();
        assert_eq!(all, (0..writes).collect::<Vec<_>>());
    }

    #[test]
    fn a_reaped_process_is_gone() {
        let mut c = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = c.id() as i32;
        assert!(!gone(pid));
        c.kill().unwrap();
        // Dead but not reaped: a zombie, which counts as gone.
        let t = now_ns();
        while !gone(pid) {
            assert!(now_ns() - t < 5_000_000_000, "zombie not seen as gone");
            std::thread::sleep(Duration::from_millis(5));
        }
        c.wait().unwrap();
        assert!(gone(pid));
    }
}
