//! How a server stops: SIGTERM or SIGINT logs the stop and exits with status 0. The same
//! thread takes SIGUSR1 and SIGUSR2, which make the log one level more or less verbose
//! (src/logging.rs).
//!
//! Nothing needs draining first. A write is acknowledged only after its batch is fdatasynced
//! (docs/design/storage.md), so at every instant the disk already holds everything a client
//! was told; a batch still being written was acknowledged to no one, and recovery treats its
//! partial record like any torn tail. The claims on the port and directories (claim.rs) die
//! with the process. So the stop is: log, then `_exit(0)`, which runs no atexit handlers or
//! destructors that could race the executor threads still running.
//!
//! The signals are blocked in every thread (the mask is set before any thread starts and is
//! inherited) and taken synchronously by one thread with `sigwait`, so no handler runs in
//! async-signal context. A SIGINT that the parent left ignored (a background job of a
//! non-interactive shell) stays ignored, as shells expect.

use tracing::info;

/// Blocks SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 in the calling thread (and so in every thread
/// started after) and starts the thread that waits for them. Call before starting any other
/// thread.
pub fn install() -> std::io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the calls only
    // read and write the sets passed to them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction != libc::SIG_IGN
        {
            libc::sigaddset(&mut set, libc::SIGINT);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("corral-signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: `set` is a valid, initialised signal set; `sig` is written on success.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            if sig == libc::SIGUSR1 || sig == libc::SIGUSR2 {
                if let Err(e) = crate::logging::step(sig == libc::SIGUSR1) {
                    tracing::warn!("log level not changed: {e}");
                }
                continue;
            }
            let name = match sig {
                libc::SIGTERM => "SIGTERM",
                libc::SIGINT => "SIGINT",
                _ => continue,
            };
            info!("shutting down on {name}: every acknowledged write is already in the log");
            info!("shut down");
            // SAFETY: ends the process at once; see the module doc for why not `exit`.
            unsafe { libc::_exit(0) }
        })?;
    Ok(())
}
