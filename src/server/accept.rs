//! The accept loops of a shard (client port and secure client port), and maxClientCnxns:
//! connections per client IP, counted across every shard (the only mutex in the server, taken
//! on accept and close, never per request).

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;
use tracing::{debug, warn};

use super::secure::SecurePort;
use super::serve::serve;
use super::shard::{Env, ShardRef};

/// Accepts connections on one of the shard's listening sockets (the client port, or with
/// `secure` the secure client port) and serves each in its own task.
pub(super) async fn run(
    env: Rc<Env>,
    shard: ShardRef,
    socket: socket2::Socket,
    secure: Option<Rc<SecurePort>>,
) {
    // SAFETY: the fd is a listening TCP socket that nothing else owns.
    let listener = unsafe {
        use std::os::fd::{FromRawFd, IntoRawFd};
        TcpListener::from_raw_fd(socket.into_raw_fd())
    };
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        if !admit(&env, peer.ip()) {
            warn!(%peer, "too many connections from {}, max is {}", peer.ip(), env.cfg.max_client_cnxns);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (env, shard, secure) = (env.clone(), shard.clone(), secure.clone());
        glommio::spawn_local(async move {
            match secure {
                None => serve(&env, &shard, stream, peer, Vec::new()).await,
                // The handshake runs in the connection's task: a slow one holds up no other.
                Some(port) => match port.handshake(stream).await {
                    Ok((stream, ids)) => serve(&env, &shard, stream, peer, ids).await,
                    Err(e) => debug!(%peer, "TLS handshake failed: {e}"),
                },
            }
            release(&env, peer.ip());
        })
        .detach();
    }
}

/// maxClientCnxns: connections per client IP across all shards (0 = unlimited).
fn admit(env: &Env, ip: IpAddr) -> bool {
    let mut m = env.per_ip.lock().unwrap();
    let n = m.entry(ip).or_insert(0);
    if env.cfg.max_client_cnxns != 0 && *n >= env.cfg.max_client_cnxns {
        return false;
    }
    *n += 1;
    true
}

fn release(env: &Env, ip: IpAddr) {
    let mut m = env.per_ip.lock().unwrap();
    if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}
