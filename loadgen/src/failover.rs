//! `loadgen failover`: one round of the failover benchmark (loadgen/failover.sh) against a running
//! three-member ensemble, corral or ZooKeeper alike.
//!
//! It finds the leader with `srvr`, starts a writer on each follower (one session doing setData
//! back to back, one request at a time) and a poller on each (`srvr` every `--poll-ms`), then
//! sends SIGKILL to the leader's PID itself, so the kill instant is read from the same clock as
//! every answer. It measures:
//! - elect+sync: from the kill until the survivors' latest `srvr` answers are one `Mode: leader`
//!   and one `Mode: follower` (before the kill both say follower, so a stale answer cannot pass);
//! - write outage, per writer: the longest gap between consecutive acknowledged writes from its
//!   last acknowledgement before the kill to the first acknowledgement of a write *sent* after
//!   it. (An acknowledgement can arrive just after the kill for a write the old leader had
//!   committed; counting gaps rather than "first ack after the kill" keeps that from hiding the
//!   outage.)
//!
//! Writers are raw protocol sessions, not a client library: on any error, disconnect or refused
//! handshake they reconnect to the same member at once, then every `--retry-ms`, resuming their
//! session (id, password, last zxid seen) as a client would, and starting a new one only if the
//! server says the session expired. No backoff, so what is measured is the server's outage and
//! not a library's retry schedule. Plain threads and blocking sockets: a handful of connections,
//! and the measuring thread sleeps between checks.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::Args;
use corral::proto::jute::Reader;
use corral::proto::records::ConnectRequest;
use corral::proto::{finish_frame, split_frame, start_frame, Frame};

use crate::sess::MAX_FRAME;
use crate::setup::Blocking;
use crate::stats::now_ns;
use crate::wire;

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// Client addresses of the three members, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub members: Vec<String>,
    /// PIDs of the members, in the order of --members (the leader's gets SIGKILL).
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<i32>,
    /// Name of the system in the output (corral, zookeeper).
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Round number, copied to the output.
    #[arg(long, default_value_t = 1)]
    pub round: usize,
    /// Seconds to wait for one leader and two followers before starting.
    #[arg(long, default_value_t = 60.0)]
    pub ready_limit: f64,
    /// Milliseconds of steady writing before the kill.
    #[arg(long, default_value_t = 1000)]
    pub before_ms: u64,
    /// Milliseconds between `srvr` polls of each survivor.
    #[arg(long, default_value_t = 5)]
    pub poll_ms: u64,
    /// Milliseconds between reconnect attempts of a writer (the first one is immediate).
    #[arg(long, default_value_t = 5)]
    pub retry_ms: u64,
    /// Seconds a write may stay unanswered before its writer gives up on the connection.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Seconds after the kill before the round is declared failed (exit status 3).
    #[arg(long, default_value_t = 30.0)]
    pub limit: f64,
    /// Session timeout asked for by the writers, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub session_timeout_ms: i32,
    /// One JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leader,
    Follower,
    /// Answered, but no `Mode:` line (not serving) or another mode.
    Other,
    /// No answer: refused, reset or timed out.
    Down,
}

/// One `srvr` answer of one member, and when it arrived.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: u64,
    mode: Mode,
}

/// The text of a `srvr` answer; None if refused, reset or timed out.
pub(crate) fn srvr_text(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The value of a `srvr` answer's `NAME: ` line.
pub(crate) fn srvr_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn srvr(addr: SocketAddr, timeout: Duration) -> Mode {
    match srvr_text(addr, timeout) {
        None => Mode::Down,
        Some(text) => match srvr_field(&text, "Mode") {
            Some("leader") => Mode::Leader,
            Some("follower") => Mode::Follower,
            _ => Mode::Other,
        },
    }
}

/// Shared between the measuring thread and a writer.
#[derive(Default)]
struct WriterLog {
    /// (send, ack) of every acknowledged write, in order.
    acks: Mutex<Vec<(u64, u64)>>,
    /// Errors and disconnects, by kind.
    errors: Mutex<std::collections::BTreeMap<String, u64>>,
    reconnects: AtomicU64,
    /// When each handshake completed.
    connected: Mutex<Vec<u64>>,
}

impl WriterLog {
    fn error(&self, kind: String) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// A writer's session: what it needs to resume after a reconnect.
#[derive(Default)]
struct Session {
    id: i64,
    passwd: Bytes,
    last_zxid: i64,
}

struct Conn {
    s: TcpStream,
    rbuf: BytesMut,
}

impl Conn {
    /// The next frame; `Ok(None)` on a read timeout (the socket's, short, so stop is noticed).
    fn frame(&mut self) -> Result<Option<Bytes>, String> {
        let mut chunk = [0u8; 4096];
        loop {
            match split_frame(&mut self.rbuf, MAX_FRAME) {
                Frame::Payload(p) => return Ok(Some(p)),
                Frame::TooLarge(_) => return Err("bad-frame".into()),
                Frame::Incomplete => {}
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(format!("read-{:?}", e.kind())),
            }
        }
    }
}

/// TCP connect and handshake, resuming `sess` if it has an id. A refused session (expired)
/// is forgotten, so the next attempt starts a new one.
fn connect(addr: SocketAddr, sess: &mut Session, timeout_ms: i32) -> Result<Conn, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect-{:?}", e.kind()))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    let at = start_frame(&mut out);
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: sess.last_zxid,
        timeout_ms,
        session_id: sess.id,
        passwd: if sess.id == 0 {
            Bytes::from_static(&[0; 16])
        } else {
            sess.passwd.clone()
        },
        read_only: Some(false),
    }
    .encode(&mut out);
    finish_frame(&mut out, at);
    let mut c = Conn {
        s,
        rbuf: BytesMut::new(),
    };
    c.s.write_all(&out)
        .map_err(|e| format!("write-{:?}", e.kind()))?;
    let t = now_ns();
    let p = loop {
        if let Some(p) = c.frame()? {
            break p;
        }
        if now_ns() - t > 2_000_000_000 {
            return Err("handshake-timeout".into());
        }
    };
    let mut r = Reader::new(p);
    let bad = |_| "handshake-decode".to_string();
    let _proto = r.i32().map_err(bad)?;
    let timeout = r.i32().map_err(bad)?;
    let id = r.i64().map_err(bad)?;
    let passwd = r.buffer().map_err(bad)?;
    if timeout <= 0 {
        *sess = Session::default();
        return Err("session-expired".into());
    }
    sess.id = id;
    sess.passwd = passwd;
    Ok(c)
}

/// Writes to `path` on `addr` until `stop`, one setData at a time, reconnecting on any failure.
fn writer(
    addr: SocketAddr,
    path: String,
    a: WriterCfg,
    log: Arc<WriterLog>,
    stop: Arc<AtomicBool>,
) {
    let mut sess = Session::default();
    let data = [b'f'; 16];
    let mut xid = 1;
    let mut attempt = 0u64;
    while !stop.load(Ordering::Acquire) {
        if attempt > 0 {
            std::thread::sleep(a.retry);
        }
        attempt += 1;
        let mut c = match connect(addr, &mut sess, a.session_timeout_ms) {
            Ok(c) => c,
            Err(e) => {
                log.error(e);
                continue;
            }
        };
        log.connected.lock().unwrap().push(now_ns());
        if attempt > 1 {
            log.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        attempt = 1;
        // Back-to-back writes on this connection until one fails.
        let failed: String = 'conn: loop {
            let mut out = BytesMut::new();
            wire::set_data(&mut out, xid, &path, &data, -1);
            let sent = now_ns();
            if let Err(e) = c.s.write_all(&out) {
                break 'conn format!("write-{:?}", e.kind());
            }
            loop {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let p = match c.frame() {
                    Ok(Some(p)) => p,
                    Ok(None) => {
                        if now_ns() - sent > a.request_timeout_ns {
                            break 'conn "request-timeout".into();
                        }
                        continue;
                    }
                    Err(e) => break 'conn e,
                };
                let at = now_ns();
                let mut r = Reader::new(p);
                let (Ok(rxid), Ok(zxid), Ok(err)) = (r.i32(), r.i64(), r.i32()) else {
                    break 'conn "reply-decode".into();
                };
                if rxid < 0 {
                    continue;
                }
                if zxid > sess.last_zxid {
                    sess.last_zxid = zxid;
                }
                if rxid != xid {
                    break 'conn "xid-mismatch".into();
                }
                xid += 1;
                if err != 0 {
                    break 'conn wire::code_name(err);
                }
                log.acks.lock().unwrap().push((sent, at));
                break;
            }
        };
        log.error(failed);
    }
}

#[derive(Clone, Copy)]
struct WriterCfg {
    retry: Duration,
    request_timeout_ns: u64,
    session_timeout_ms: i32,
}

fn poller(addr: SocketAddr, every: Duration, out: Arc<Mutex<Vec<Sample>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let t = now_ns();
        let mode = srvr(addr, Duration::from_millis(500));
        out.lock().unwrap().push(Sample { at: now_ns(), mode });
        let spent = Duration::from_nanos(now_ns() - t);
        std::thread::sleep(every.saturating_sub(spent));
    }
}

/// The first instant after `kill` at which the two survivors' latest answers are one leader and
/// one follower.
fn elected_at(kill: u64, a: &[Sample], b: &[Sample]) -> Option<u64> {
    let mut all: Vec<(u64, usize, Mode)> = a
        .iter()
        .map(|s| (s.at, 0, s.mode))
        .chain(b.iter().map(|s| (s.at, 1, s.mode)))
        .filter(|s| s.0 > kill)
        .collect();
    all.sort_by_key(|s| s.0);
    let mut last = [Mode::Down; 2];
    for (at, who, mode) in all {
        last[who] = mode;
        if matches!(
            last,
            [Mode::Leader, Mode::Follower] | [Mode::Follower, Mode::Leader]
        ) {
            return Some(at);
        }
    }
    None
}

/// The write outage a writer saw: the longest gap between consecutive acknowledgements from the
/// last one before `kill` to the first one of a write sent after it. None if it has no ack
/// before or none of a write sent after.
fn outage(kill: u64, acks: &[(u64, u64)]) -> Option<u64> {
    let before = acks.iter().rposition(|&(_, at)| at <= kill)?;
    let after = before + acks[before..].iter().position(|&(sent, _)| sent > kill)?;
    acks[before..=after]
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
}

/// The first answer after `kill` that was not a serving leader or follower: when the member
/// noticed (or was seen to notice) its leader was gone.
fn noticed_at(kill: u64, s: &[Sample]) -> Option<u64> {
    s.iter()
        .find(|s| s.at > kill && !matches!(s.mode, Mode::Leader | Mode::Follower))
        .map(|s| s.at)
}

pub(crate) fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

/// Waits up to `limit_s` seconds until the members answer `srvr` as one leader and two
/// followers; returns the leader's index.
pub(crate) fn wait_ready(addrs: &[SocketAddr], limit_s: f64) -> Result<usize, String> {
    let t = now_ns();
    loop {
        let modes: Vec<Mode> = addrs
            .iter()
            .map(|&m| srvr(m, Duration::from_secs(1)))
            .collect();
        let leaders: Vec<usize> = (0..3).filter(|&i| modes[i] == Mode::Leader).collect();
        let followers = modes.iter().filter(|m| **m == Mode::Follower).count();
        if leaders.len() == 1 && followers == 2 {
            return Ok(leaders[0]);
        }
        if now_ns() - t > (limit_s * 1e9) as u64 {
            return Err(format!(
                "no leader and two followers within {limit_s} s: {modes:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one round; returns its report and whether both metrics were measured.
pub fn run(a: &FailoverArgs) -> Result<(String, bool), String> {
    if a.members.len() != 3 || a.pids.len() != 3 {
        return Err("need exactly three --members and three --pids".into());
    }
    let addrs = crate::resolve(&a.members)?;
    let _ = now_ns();

    let leader = wait_ready(&addrs, a.ready_limit)?;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // The writers' znodes, created through a survivor (a write goes through the leader).
    let paths: Vec<String> = survivors
        .iter()
        .map(|i| format!("/failover/w{i}"))
        .collect();
    let mut b = Blocking::connect(addrs[survivors[0]], Duration::from_secs(5))?;
    b.ensure(&["/failover".to_string()])?;
    b.ensure(&paths)?;
    b.close();

    let stop = Arc::new(AtomicBool::new(false));
    let cfg = WriterCfg {
        retry: Duration::from_millis(a.retry_ms),
        request_timeout_ns: (a.request_timeout * 1e9) as u64,
        session_timeout_ms: a.session_timeout_ms,
    };
    let mut threads = Vec::new();
    let logs: Vec<Arc<WriterLog>> = survivors.iter().map(|_| Arc::default()).collect();
    let samples: Vec<Arc<Mutex<Vec<Sample>>>> = survivors.iter().map(|_| Arc::default()).collect();
    for (k, &i) in survivors.iter().enumerate() {
        let (addr, path, log, st) = (addrs[i], paths[k].clone(), logs[k].clone(), stop.clone());
        threads.push(std::thread::spawn(move || writer(addr, path, cfg, log, st)));
        let (every, out, st) = (
            Duration::from_millis(a.poll_ms),
            samples[k].clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || poller(addr, every, out, st)));
    }
    let finish = |stop: &AtomicBool, threads: Vec<std::thread::JoinHandle<()>>| {
        stop.store(true, Ordering::Release);
        for t in threads {
            let _ = t.join();
        }
    };

    std::thread::sleep(Duration::from_millis(a.before_ms));
    let acked_before: Vec<usize> = logs.iter().map(|l| l.acks.lock().unwrap().len()).collect();
    if acked_before.contains(&0) {
        finish(&stop, threads);
        let errs: Vec<_> = logs
            .iter()
            .map(|l| l.errors.lock().unwrap().clone())
            .collect();
        return Err(format!(
            "a writer had no write acknowledged before the kill: {errs:?}"
        ));
    }

    // SAFETY: kill has no memory-safety preconditions; the PID is the caller's member.
    let kill = now_ns();
    if unsafe { libc::kill(a.pids[leader], libc::SIGKILL) } != 0 {
        finish(&stop, threads);
        return Err(format!(
            "kill -9 {}: {}",
            a.pids[leader],
            std::io::Error::last_os_error()
        ));
    }

    // Until both metrics are measured, or the limit.
    let limit = kill + (a.limit * 1e9) as u64;
    let (mut elect, mut outages) = (None, vec![None; logs.len()]);
    while now_ns() < limit {
        std::thread::sleep(Duration::from_millis(10));
        elect = elected_at(
            kill,
            &samples[0].lock().unwrap(),
            &samples[1].lock().unwrap(),
        );
        outages = logs
            .iter()
            .map(|l| outage(kill, &l.acks.lock().unwrap()))
            .collect();
        if elect.is_some() && outages.iter().all(Option::is_some) {
            break;
        }
    }
    finish(&stop, threads);

    let noticed: Vec<Option<f64>> = samples
        .iter()
        .map(|s| noticed_at(kill, &s.lock().unwrap()).map(|t| ms(t - kill)))
        .collect();
    let new_leader = survivors.iter().zip(&samples).find_map(|(&i, s)| {
        let s = s.lock().unwrap();
        (s.last().map(|s| s.mode) == Some(Mode::Leader)).then(|| a.members[i].clone())
    });
    let elect_ms = elect.map(|t| ms(t - kill));
    let outage_ms: Vec<Option<f64>> = outages.iter().map(|o| o.map(ms)).collect();
    let max_outage = outage_ms
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.into_iter().fold(0.0, f64::max));
    let ok = elect_ms.is_some() && max_outage.is_some();
    let errors: Vec<_> = logs
        .iter()
        .map(|l| l.errors.lock().unwrap().clone())
        .collect();
    // When each writer had a session again after the kill: the rest of its outage is its
    // first write's.
    let rejoined: Vec<Option<f64>> = logs
        .iter()
        .map(|l| {
            let c = l.connected.lock().unwrap();
            c.iter().find(|&&t| t > kill).map(|t| ms(t - kill))
        })
        .collect();
    let reconnects: Vec<u64> = logs
        .iter()
        .map(|l| l.reconnects.load(Ordering::Relaxed))
        .collect();
    let out = if a.json {
        serde_json::json!({
            "system": a.label,
            "round": a.round,
            "ok": ok,
            "killed": a.members[leader],
            "new_leader": new_leader,
            "elect_ms": elect_ms,
            "outage_ms": max_outage,
            "writer_outage_ms": outage_ms,
            "noticed_ms": noticed,
            "writes_before_kill": acked_before,
            "reconnects": reconnects,
            "session_back_ms": rejoined,
            "errors": errors,
        })
        .to_string()
            + "\n"
    } else {
        format!(
            "{} round {}: killed leader {}; elect+sync {} ms, write outage {} ms (per writer {:?}); new leader {}\n",
            a.label,
            a.round,
            a.members[leader],
            elect_ms.map_or("-".into(), |v| v.to_string()),
            max_outage.map_or("-".into(), |v| v.to_string()),
            outage_ms,
            new_leader.as_deref().unwrap_or("-"),
        )
    };
    Ok((out, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, mode: Mode) -> Sample {
        Sample { at, mode }
    }

    #[test]
    fn elected_needs_a_leader_and_a_follower_after_the_kill() {
        use Mode::*;
        let a = [s(5, Follower), s(20, Follower), s(30, Other), s(60, Leader)];
        let b = [
            s(6, Follower),
            s(25, Down),
            s(50, Follower),
            s(70, Follower),
        ];
        assert_eq!(elected_at(10, &a, &b), Some(60));
        // Stale followers on both sides never count.
        assert_eq!(elected_at(10, &a[..3], &b), None);
    }

    #[test]
    fn outage_is_the_longest_gap_up_to_a_write_sent_after_the_kill() {
        // Acked at 100 before the kill at 150; an in-flight write acked at 160; the next ones
        // only at 900 and 910.
        let acks = [(90, 100), (100, 160), (160, 900), (900, 910)];
        assert_eq!(outage(150, &acks), Some(740));
        assert_eq!(
            outage(150, &acks[..2]),
            None,
            "no write sent after the kill acked"
        );
        assert_eq!(outage(50, &acks), None, "nothing acked before the kill");
    }
}
