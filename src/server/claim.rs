//! Exclusive claims a server holds for its whole life: its client port and its data
//! directories. Two servers on one port would split clients between two trees (the shards bind
//! with SO_REUSEPORT, which lets a second process join the port); two on one directory would
//! interleave two logs. Both must be refused even when the two start at the same instant.
//!
//! - The port: an abstract-namespace Unix socket named after the port (`corral-client-port-N`).
//!   Binding a name is atomic, the namespace is per network namespace like the port itself, and
//!   the kernel frees the name the moment the process dies (kill -9 included), so nothing
//!   lingers to block a restart, unlike the TCP listener an io_uring may hold for a while.
//! - A directory: `flock(LOCK_EX | LOCK_NB)` on `<dir>/corral.lock`, which also dies with the
//!   process. The file keeps the holder's pid, for the refusal message.
//!
//! Both are released by the kernel on exit; nothing here needs a destructor to run.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// The name of the lock file in dataDir (and in dataLogDir when it differs).
pub const LOCK_FILE: &str = "corral.lock";

/// Holds a claim while alive; dropping it (or exiting) releases it.
pub struct Claim {
    _held: OwnedFd,
}

/// Claims `port` for this process. `shown` is how the error names it (address:port).
pub fn port(port: u16, shown: &str) -> io::Result<Claim> {
    let name = SocketAddr::from_abstract_name(format!("corral-client-port-{port}"))?;
    match UnixDatagram::bind_addr(&name) {
        Ok(s) => Ok(Claim { _held: s.into() }),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "client port {shown} is in use by another corral server; stop it, or pick \
                 another port (--port N)"
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot claim client port {shown}: {e}"),
        )),
    }
}

/// Claims directory `dir` (which exists) for this process. `role` names it in errors
/// ("dataDir", "dataLogDir").
pub fn dir(dir: &Path, role: &str) -> io::Result<Claim> {
    let path = dir.join(LOCK_FILE);
    let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(at)?;
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(at(e));
        }
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = match holder.trim().parse::<u32>() {
            Ok(pid) => format!(" (pid {pid})"),
            Err(_) => String::new(),
        };
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{role} {} is in use by another corral server{holder}; two servers must \
                 not share a data directory",
                dir.display()
            ),
        ));
    }
    // The pid is only a hint for the message above; the lock is what counts.
    f.set_len(0).map_err(at)?;
    f.rewind().map_err(at)?;
    writeln!(f, "{}", std::process::id()).map_err(at)?;
    Ok(Claim { _held: f.into() })
}
