//! A freezable loopback TCP proxy. While frozen, nothing is forwarded in
//! either direction (sockets stay open, so neither side sees a close); this
//! lets a test stop a client's pings without the client noticing a
//! disconnect, so the server expires the session. `sever()` drops every
//! proxied connection at once; `cut()` does both (the ensemble harness cuts
//! links between members with it).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub port: u16,
    frozen: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        Self::start_with_retry(target, std::time::Duration::ZERO).await
    }

    /// Like [`Proxy::start`], but a refused upstream connect is retried for up to `retry`
    /// before the accepted connection is closed. The proxy accepts before it knows whether
    /// the target listens; without the retry a peer that dials a port just before it is
    /// bound sees a connection that opens and dies at once, where the real port would have
    /// refused it (and ZooKeeper's learner, for one, retries a refusal but gives up on the
    /// other).
    pub async fn start_with_retry(
        target: std::net::SocketAddr,
        retry: std::time::Duration,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().unwrap().port();
        let (frozen, _) = watch::channel(false);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let frozen_rx = frozen.subscribe();
        let conns2 = conns.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let rx = frozen_rx.clone();
                let handle = tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    // Do not even connect upstream while frozen.
                    wait_unfrozen(&mut rx.clone()).await;
                    let deadline = tokio::time::Instant::now() + retry;
                    let server = loop {
                        match TcpStream::connect(target).await {
                            Ok(s) => break s,
                            Err(_) if tokio::time::Instant::now() < deadline => {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                wait_unfrozen(&mut rx.clone()).await;
                            }
                            Err(_) => return,
                        }
                    };
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let a = tokio::spawn(pump(cr, sw, rx.clone()));
                    let b = tokio::spawn(pump(sr, cw, rx));
                    let ab = a.abort_handle();
                    let bb = b.abort_handle();
                    struct AbortOnDrop(tokio::task::AbortHandle, tokio::task::AbortHandle);
                    impl Drop for AbortOnDrop {
                        fn drop(&mut self) {
                            self.0.abort();
                            self.1.abort();
                        }
                    }
                    let _guard = AbortOnDrop(ab, bb);
                    // When either direction ends, tear down both.
                    tokio::select! {
                        _ = a => {},
                        _ = b => {},
                    }
                });
                conns2.lock().unwrap().push(handle);
            }
        });
        Proxy {
            port,
            frozen,
            accept_task,
            conns,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops forwarding in both directions (connections stay open).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn unfreeze(&self) {
        self.frozen.send_replace(false);
    }

    /// Cuts the link: freezes it (new connections are accepted but black-holed: nothing is
    /// forwarded, not even a connect upstream) and severs every existing connection. Undo with
    /// [`Proxy::unfreeze`].
    pub fn cut(&self) {
        self.freeze();
        self.sever();
    }

    /// Closes every proxied connection (both sides see the socket close).
    pub fn sever(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.sever();
    }
}

async fn wait_unfrozen(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|f| !*f).await;
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_unfrozen(&mut rx).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Data read just as the freeze began is held back until unfrozen.
        wait_unfrozen(&mut rx).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
