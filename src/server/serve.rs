//! A connection's two tasks (`serve`): the reader splits frames, waits for room
//! (`room_to_read`), and hands each frame to the request path (request.rs); the writer flushes
//! the connection's output as it fills. The connection's state is in conn.rs.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use crate::admin::{self, FourLetter};
use crate::proto::records::Id;
use crate::proto::{split_frame, Frame};

use super::conn::{Conn, ConnRef};
use super::fourlw;
use super::request::on_frame;
use super::shard::{Env, ShardRef};
use super::{Origin, ToCore};

/// How long a new connection may take to send its connect request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a socket per read call. Each connection holds one such buffer for its life,
/// so it stays small (10k connections x 64 KiB would be 640 MiB): 16 KiB still takes a few
/// hundred pipelined requests per read, and bigger frames simply take several reads.
const READ_CHUNK: usize = 16 * 1024;

/// Runs one client connection until it closes: a plain socket, or a TLS stream whose
/// handshake gave `ids` (the client certificate's `x509` identity).
pub(super) async fn serve<S>(
    env: &Rc<Env>,
    shard: &ShardRef,
    stream: S,
    peer: SocketAddr,
    ids: Vec<Id>,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    let conn_id = {
        let mut s = shard.borrow_mut();
        let id = s.next_conn;
        s.next_conn += 1;
        id
    };
    let conn: ConnRef = Rc::new(RefCell::new(Conn::new(
        conn_id,
        peer,
        env.cfg.output_limit(),
    )));
    if !ids.is_empty() {
        conn.borrow_mut().add_ids(ids);
    }
    shard.borrow_mut().conns.insert(conn_id, conn.clone());
    // A connection that never completes its handshake is closed, as ZooKeeper closes
    // session-less connections (its `sessionlessCnxnTimeout`, 10 s). The reader enforces it
    // (below): a timer task per connection would keep every closed connection alive for 10 s,
    // which under connection churn (20k/s) held ~170 MB.
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;

    let writer = {
        let conn = conn.clone();
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                let (buf, closing) =
                    futures_lite::future::poll_fn(|cx| conn.borrow_mut().poll_output(cx)).await;
                if conn.borrow().overflowed() {
                    break; // drop the socket unflushed: the client is not reading
                }
                if !buf.is_empty() {
                    // Raced with an overflow: a client that never reads would hold this write
                    // (and the connection) forever.
                    let written = futures_lite::future::or(
                        async { Some(wr.write_all(&buf).await.is_ok()) },
                        async {
                            futures_lite::future::poll_fn(|cx| conn.borrow_mut().poll_overflow(cx))
                                .await;
                            None
                        },
                    )
                    .await;
                    if written != Some(true) {
                        break;
                    }
                    let mut c = conn.borrow_mut();
                    if c.written() {
                        shard.borrow_mut().drain(&mut c);
                    }
                }
                if closing && conn.borrow().flushed() {
                    let _ = wr.flush().await;
                    let _ = wr.close().await;
                    break;
                }
            }
            // The reader may be parked on a read the client never answers.
            conn.borrow_mut().close();
        })
    };

    // Grows only if frames arrive split or pipelined beyond one read.
    let mut inbuf = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let outstanding_max = (env.cfg.global_outstanding_limit as usize).max(1);
    'read: loop {
        room_to_read(&conn, outstanding_max).await;
        let closed = futures_lite::future::poll_fn(|cx| conn.borrow_mut().poll_closed(cx));
        let handshaking = conn.borrow().handshaking();
        let timed_out = async {
            if handshaking {
                glommio::timer::sleep(handshake_deadline.saturating_duration_since(Instant::now()))
                    .await;
            } else {
                futures_lite::future::pending::<()>().await;
            }
            None
        };
        let read = async { Some(rd.read(&mut chunk).await) };
        let closed = async {
            closed.await;
            None
        };
        let n = match futures_lite::future::or(read, futures_lite::future::or(closed, timed_out))
            .await
        {
            Some(Ok(0)) | Some(Err(_)) | None => break,
            Some(Ok(n)) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        loop {
            // Requests pipelined behind the connect request wait for its answer, so that they
            // reach the write core with their session and in order.
            futures_lite::future::poll_fn(|cx| conn.borrow_mut().poll_connected(cx)).await;
            // Per frame too: one read can carry hundreds of requests.
            room_to_read(&conn, outstanding_max).await;
            if conn.borrow().closing() {
                break 'read;
            }
            if conn.borrow().handshaking() && inbuf.len() >= 4 {
                if let Some(cmd) = FourLetter::from_len_prefix(inbuf[..4].try_into().unwrap()) {
                    // `stmk` carries the new mask in the 8 bytes after the word (a refused
                    // one is answered without them, as ZooKeeper checks its whitelist first).
                    let mut mask = None;
                    if cmd == FourLetter::Stmk && admin::is_allowed(cmd, &env.cfg) {
                        let Some(m) = inbuf.get(4..12) else {
                            break; // wait for the rest (the handshake timeout bounds this)
                        };
                        mask = Some(i64::from_be_bytes(m.try_into().unwrap()));
                    }
                    let text =
                        fourlw::four_letter(&env.cfg, &env.shared, &env.to_core, cmd, mask).await;
                    conn.borrow_mut().answer_four_letter(&text);
                    break 'read;
                }
            }
            let payload = match split_frame(&mut inbuf, env.cfg.jute_max_buffer as usize) {
                Frame::Payload(p) => p,
                Frame::Incomplete => break,
                Frame::TooLarge(len) => {
                    warn!(%peer, len, "frame length out of range, closing connection");
                    break 'read;
                }
            };
            let to_core = match on_frame(env, shard, &conn, payload) {
                Ok(msgs) => msgs,
                Err(why) => {
                    debug!(%peer, "closing connection: {why}");
                    conn.borrow_mut().close();
                    break 'read;
                }
            };
            for m in to_core {
                if env.to_core.send(m).await.is_err() {
                    break 'read;
                }
            }
        }
    }
    conn.borrow_mut().close();
    let _ = writer.await;
    let (session_id, attached) = {
        let c = conn.borrow();
        (c.session_id(), c.attached())
    };
    {
        let mut s = shard.borrow_mut();
        s.conns.remove(&conn_id);
        s.watches.remove_conn(conn_id);
        if s.sessions.get(&session_id) == Some(&conn_id) {
            s.sessions.remove(&session_id);
        }
    }
    if attached {
        let origin = Origin {
            shard: env.id,
            conn: conn_id,
        };
        let _ = env
            .to_core
            .send(ToCore::Disconnected { origin, session_id })
            .await;
    }
}

/// Backpressure: waits while too many of this connection's requests are unanswered
/// (ZooKeeper's globalOutstandingLimit, applied per connection here) or too much of its output
/// waits to be sent (a client that reads slowly, or not at all, holds its own requests back in
/// TCP instead of growing the server's buffers).
async fn room_to_read(conn: &ConnRef, outstanding_max: usize) {
    futures_lite::future::poll_fn(|cx| conn.borrow_mut().poll_room(cx, outstanding_max)).await
}
