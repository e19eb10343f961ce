//! A corpus of malformed input, each piece on its own connection, against a live server: random
//! bytes, mutated and truncated valid frames, hostile lengths, both before and after the
//! handshake. The server must answer each as ZooKeeper does (an error reply or a closed
//! connection), never hang a connection open forever, and keep serving a client that was
//! connected all along.

mod common;

use std::time::Duration;

use common::raw::{self, Enc, RawConn};
use common::*;
use tokio::io::AsyncWriteExt;

/// xorshift64: a deterministic corpus, the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn valid_requests() -> Vec<Vec<u8>> {
    vec![
        Enc::new()
            .i32(1)
            .i32(1)
            .str("/m")
            .buf(Some(b"x"))
            .acls(raw::OPEN_ACL)
            .i32(0)
            .finish(),
        Enc::new().i32(2).i32(4).str("/").bool(true).finish(),
        Enc::new()
            .i32(3)
            .i32(14)
            .i32(1)
            .bool(false)
            .i32(-1)
            .str("/m2")
            .buf(None)
            .acls(raw::OPEN_ACL)
            .i32(0)
            .i32(-1)
            .bool(true)
            .i32(-1)
            .finish(),
        Enc::new()
            .i32(4)
            .i32(101)
            .i64(0)
            .i32(1)
            .str("/a")
            .i32(0)
            .i32(0)
            .finish(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_corpus_does_not_disturb_other_clients() {
    timed(120, async {
        let s = TestServer::start_default().await;
        let bystander = s.client().await;
        bystander.create("/alive", b"", &anyone()).await.unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let valid = valid_requests();
        for i in 0..300 {
            let mut input = match i % 4 {
                // Random bytes straight after connecting (a bad handshake).
                0 => {
                    let n = (rng.next() % 64) as usize;
                    rng.bytes(n)
                }
                // A hostile length prefix followed by a little data.
                1 => {
                    let mut v = (rng.next() as i32).to_be_bytes().to_vec();
                    let n = (rng.next() % 16) as usize;
                    v.extend(rng.bytes(n));
                    v
                }
                // A mutated valid request after a real handshake.
                _ => {
                    let mut body = valid[i % valid.len()].clone();
                    for _ in 0..(1 + rng.next() % 4) {
                        let at = (rng.next() as usize) % body.len();
                        body[at] = rng.next() as u8;
                    }
                    body.truncate(8 + (rng.next() as usize) % (body.len() - 7));
                    raw::frame(&body)
                }
            };
            let after_handshake = i % 4 >= 2;
            let mut stream = if after_handshake {
                let conn = RawConn::connect(&s.addr(), 30_000).await.unwrap();
                conn.stream
            } else {
                raw_tcp(&s.addr()).await
            };
            if stream.write_all(&input).await.is_err() {
                continue;
            }
            // Half-close: the server sees EOF after the garbage and must close its side.
            input.clear();
            let _ = stream.shutdown().await;
            let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
            assert!(closed, "input {i}: connection left open after EOF");
            if i % 50 == 0 {
                assert!(
                    bystander.check_stat("/alive").await.unwrap().is_some(),
                    "after input {i}"
                );
            }
        }
        assert!(bystander.check_stat("/alive").await.unwrap().is_some());
        let fresh = s.client().await;
        fresh.create("/still", b"ok", &anyone()).await.unwrap();
        assert_eq!(s.four_letter("ruok").await, "imok");
    })
    .await
}
