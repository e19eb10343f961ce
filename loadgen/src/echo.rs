//! The echo floor: an in-process glommio server that answers every frame with the least work a
//! ZooKeeper server could do (no tree, no ACLs, no log), so a run against it measures what the
//! loadgen and the kernel's loopback path cost by themselves.
//!
//! It answers the handshake with a session, getData with `payload` bytes and a zero stat,
//! exists/setData with a zero stat, getChildren with no children, create with the requested
//! path, delete/closeSession with an empty reply (then closes), ping with a ping reply. Replies
//! to everything read in one wakeup go out in one write.
//!
//! With `hops` > 1, the client's connection first goes through `hops - 1` relays on the same
//! thread, each a TCP proxy to the next (bytes copied as read, both ways): the floor of an
//! ensemble, where a write crosses loopback several times (client, follower, leader, the other
//! follower and back) before it is answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use corral::proto::codes::op;
use corral::proto::jute::{Reader, Writer};
use corral::proto::records::Stat;
use corral::proto::{finish_frame, split_frame, start_frame, Frame};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

/// A running echo server: its address and its executor thread's id (for CPU accounting).
pub struct Echo {
    pub addr: SocketAddr,
    pub tid: i32,
}

pub fn start(cpu: usize, payload: usize, hops: usize) -> Result<Echo, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let tid = Arc::new(AtomicI32::new(0));
    let tid2 = tid.clone();
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name("loadgen-echo")
        .io_memory(512 * 1024)
        .spawn(move || async move {
            // SAFETY: gettid has no preconditions.
            tid2.store(unsafe { libc::gettid() }, Ordering::Release);
            let l = match TcpListener::bind("127.0.0.1:0") {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut front = match l.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            for _ in 1..hops.max(1) {
                match relay(front) {
                    Ok(a) => front = a,
                    Err(e) => {
                        let _ = tx.send(Err(format!("echo relay: {e}")));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(front));
            let payload = Arc::new(vec![0u8; payload]);
            let mut next_session = 1i64;
            loop {
                let Ok(s) = l.accept().await else { continue };
                let _ = s.set_nodelay(true);
                let (p, sid) = (payload.clone(), next_session);
                next_session += 1;
                glommio::spawn_local(async move { serve(s, &p, sid).await }).detach();
            }
        })
        .map_err(|e| format!("echo server: {e}"))?;
    let addr = rx
        .recv()
        .map_err(|_| "echo server did not start".to_string())??;
    Ok(Echo {
        addr,
        tid: tid.load(Ordering::Acquire),
    })
}

/// Starts a relay to `next` on this executor; returns its address.
fn relay(next: SocketAddr) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    glommio::spawn_local(async move {
        loop {
            let Ok(a) = l.accept().await else { continue };
            glommio::spawn_local(async move {
                let Ok(b) = TcpStream::connect(next).await else {
                    return;
                };
                let _ = a.set_nodelay(true);
                let _ = b.set_nodelay(true);
                let (ar, aw) = futures_lite::io::split(a);
                let (br, bw) = futures_lite::io::split(b);
                let up = glommio::spawn_local(pump(ar, bw));
                pump(br, aw).await;
                up.await;
            })
            .detach();
        }
    })
    .detach();
    Ok(addr)
}

/// Copies bytes from `r` to `w` as they arrive, until either side closes.
async fn pump(
    mut r: futures_lite::io::ReadHalf<TcpStream>,
    mut w: futures_lite::io::WriteHalf<TcpStream>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.close().await;
}

/// Output shared by a connection's reader (which fills it) and writer (which drains it), so
/// reading never waits for a write to complete: the same split corral's connections use.
#[derive(Default)]
struct Out {
    buf: BytesMut,
    waker: Option<std::task::Waker>,
    closing: bool,
}

async fn serve(s: TcpStream, payload: &[u8], session: i64) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::task::Poll;
    let (mut rd, mut wr) = futures_lite::io::split(s);
    let out = Rc::new(RefCell::new(Out::default()));
    let writer = {
        let out = out.clone();
        glommio::spawn_local(async move {
            loop {
                let (buf, closing) = futures_lite::future::poll_fn(|cx| {
                    let mut o = out.borrow_mut();
                    if !o.buf.is_empty() || o.closing {
                        Poll::Ready((o.buf.split(), o.closing))
                    } else {
                        o.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
                    return;
                }
                if closing && out.borrow().buf.is_empty() {
                    let _ = wr.close().await;
                    return;
                }
            }
        })
    };
    let mut inbuf = BytesMut::with_capacity(65536);
    let mut chunk = vec![0u8; 65536];
    let mut handshake = true;
    'conn: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        let mut o = out.borrow_mut();
        let out = &mut o.buf;
        while let Frame::Payload(p) = split_frame(&mut inbuf, 0xfffff) {
            let at = start_frame(out);
            if handshake {
                handshake = false;
                let mut r = Reader::new(p);
                let _ = r.i32();
                let _ = r.i64();
                let timeout = r.i32().unwrap_or(30_000);
                out.put_i32(0);
                out.put_i32(timeout);
                out.put_i64(session);
                out.put_jbuffer(&[0; 16]);
                out.put_jbool(false);
                finish_frame(out, at);
                continue;
            }
            let mut r = Reader::new(p);
            let (Ok(xid), Ok(opcode)) = (r.i32(), r.i32()) else {
                break 'conn;
            };
            out.put_i32(xid);
            out.put_i64(0);
            out.put_i32(0);
            let mut close = false;
            match opcode {
                op::GET_DATA => {
                    out.put_jbuffer(payload);
                    Stat::default().encode(out);
                }
                op::EXISTS | op::SET_DATA => Stat::default().encode(out),
                op::GET_CHILDREN => out.put_i32(0),
                op::CREATE => {
                    let path = r.string().unwrap_or_default();
                    out.put_jstring(&path);
                }
                op::CLOSE_SESSION => close = true,
                _ => {}
            }
            finish_frame(out, at);
            if close {
                break 'conn;
            }
        }
        if let Some(w) = o.waker.take() {
            w.wake();
        }
    }
    {
        let mut o = out.borrow_mut();
        o.closing = true;
        if let Some(w) = o.waker.take() {
            w.wake();
        }
    }
    writer.await;
}
