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

/// What ZooKeeper does with one request: an answer with this error code on a connection that
/// stays usable, or a closed connection (after an answer or none).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Code(i32),
    /// A multi answered OK or with per-op codes (0 for an op that succeeded).
    Multi(Vec<i32>),
    Closed,
}

/// A path field as jute bytes: `Some(bytes)`, or null (length -1), or a hostile length.
fn path_field(e: Enc, p: &PathField) -> Enc {
    match p {
        PathField::Bytes(b) => e.buf(Some(b)),
        PathField::Null => e.buf(None),
        PathField::Len(n) => e.i32(*n),
    }
}

#[derive(Debug, Clone)]
enum PathField {
    Bytes(&'static [u8]),
    Null,
    Len(i32),
}

/// Every request type that takes a path, with `p` as its path and otherwise valid fields.
fn path_requests(p: &PathField) -> Vec<(&'static str, i32, Vec<u8>)> {
    use raw::op;
    let f = |e: Enc| path_field(e, p);
    vec![
        (
            "create",
            op::CREATE,
            f(Enc::new())
                .buf(Some(b"d"))
                .acls(raw::OPEN_ACL)
                .i32(0)
                .finish(),
        ),
        ("delete", op::DELETE, f(Enc::new()).i32(-1).finish()),
        ("exists", op::EXISTS, f(Enc::new()).bool(false).finish()),
        (
            "exists+watch",
            op::EXISTS,
            f(Enc::new()).bool(true).finish(),
        ),
        ("getData", op::GET_DATA, f(Enc::new()).bool(false).finish()),
        (
            "setData",
            op::SET_DATA,
            f(Enc::new()).buf(Some(b"d")).i32(-1).finish(),
        ),
        ("getACL", op::GET_ACL, f(Enc::new()).finish()),
        (
            "setACL",
            op::SET_ACL,
            f(Enc::new()).acls(raw::OPEN_ACL).i32(-1).finish(),
        ),
        (
            "getChildren",
            op::GET_CHILDREN,
            f(Enc::new()).bool(false).finish(),
        ),
        (
            "getChildren2",
            op::GET_CHILDREN2,
            f(Enc::new()).bool(false).finish(),
        ),
        ("check", op::CHECK, f(Enc::new()).i32(-1).finish()),
        (
            "checkWatches",
            op::CHECK_WATCHES,
            f(Enc::new()).i32(raw::watcher_type::ANY).finish(),
        ),
        (
            "removeWatches",
            op::REMOVE_WATCHES,
            f(Enc::new()).i32(raw::watcher_type::ANY).finish(),
        ),
        (
            "getAllChildrenNumber",
            op::GET_ALL_CHILDREN_NUMBER,
            f(Enc::new()).finish(),
        ),
        ("addWatch", op::ADD_WATCH, f(Enc::new()).i32(0).finish()),
        (
            "multi.create",
            op::MULTI,
            f(Enc::new().i32(op::CREATE).bool(false).i32(-1))
                .buf(Some(b"d"))
                .acls(raw::OPEN_ACL)
                .i32(0)
                .i32(-1)
                .bool(true)
                .i32(-1)
                .finish(),
        ),
        (
            "multi.setData",
            op::MULTI,
            f(Enc::new().i32(op::SET_DATA).bool(false).i32(-1))
                .buf(Some(b"d"))
                .i32(-1)
                .i32(-1)
                .bool(true)
                .i32(-1)
                .finish(),
        ),
        (
            "multiRead.getData",
            op::MULTI_READ,
            f(Enc::new().i32(op::GET_DATA).bool(false).i32(-1))
                .bool(false)
                .i32(-1)
                .bool(true)
                .i32(-1)
                .finish(),
        ),
    ]
}

/// Sends one request on a fresh session and reports what came back.
async fn outcome(addr: &str, opcode: i32, body: &[u8]) -> Outcome {
    let mut c = RawConn::connect(addr, 30_000).await.unwrap();
    let r = match c.call(opcode, body).await {
        Ok(r) => r,
        Err(_) => return Outcome::Closed,
    };
    // Still usable? A closed connection fails the ping.
    if c.ping().await.is_err() {
        return Outcome::Closed;
    }
    if (opcode == raw::op::MULTI || opcode == raw::op::MULTI_READ) && r.err == 0 {
        let codes = raw::parse_multi(&r.body)
            .into_iter()
            .map(|m| match m {
                raw::MultiResult::Error(e) => e,
                _ => 0,
            })
            .collect();
        return Outcome::Multi(codes);
    }
    Outcome::Code(r.err)
}

/// The requests of the decoding table and ZooKeeper's answer to each (checked against Apache
/// ZooKeeper 3.8 with `CORRAL_TEST_TARGET=zookeeper`; where 3.9's source answers otherwise,
/// corral follows 3.9 and the table says so).
fn decoding_cases() -> Vec<(String, i32, Vec<u8>, Outcome)> {
    use raw::err::*;
    use raw::op;
    use Outcome::*;
    let mut cases = Vec::new();
    let ok = Code(OK);
    // Path fields: NUL, invalid UTF-8, a character outside the BMP, null, a hostile length.
    let variants: Vec<(&str, PathField, Vec<Outcome>)> = vec![
        (
            "nul",
            PathField::Bytes(b"/p\0q"),
            vec![
                Code(BAD_ARGUMENTS), // create
                Code(BAD_ARGUMENTS), // delete
                Code(BAD_ARGUMENTS), // exists
                Code(BAD_ARGUMENTS), // exists+watch
                Code(NO_NODE),       // getData
                Code(BAD_ARGUMENTS), // setData
                Code(NO_NODE),       // getACL
                Code(BAD_ARGUMENTS), // setACL
                Code(NO_NODE),       // getChildren
                Code(NO_NODE),       // getChildren2
                Code(BAD_ARGUMENTS), // check
                Code(NO_WATCHER),    // checkWatches
                Code(NO_WATCHER),    // removeWatches
                Code(NO_NODE),       // getAllChildrenNumber
                ok.clone(),          // addWatch
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![NO_NODE]),
            ],
        ),
        (
            "bad utf-8",
            PathField::Bytes(b"/p\xff"),
            vec![
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_WATCHER),
                Code(NO_WATCHER),
                Code(NO_NODE),
                ok.clone(),
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![NO_NODE]),
            ],
        ),
        (
            "outside the BMP",
            PathField::Bytes("/p\u{1F600}".as_bytes()),
            vec![
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_NODE),
                Code(NO_NODE),
                Code(BAD_ARGUMENTS),
                Code(NO_WATCHER),
                Code(NO_WATCHER),
                Code(NO_NODE),
                ok.clone(),
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![BAD_ARGUMENTS]),
                Multi(vec![NO_NODE]),
            ],
        ),
        (
            "null",
            PathField::Null,
            vec![
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(BAD_ARGUMENTS),
                Code(MARSHALLING_ERROR),
                Code(BAD_ARGUMENTS),
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(BAD_ARGUMENTS),
                // 3.9 looks a null path up in a HashMap (no watch); 3.8 threw a NPE.
                Code(if is_zookeeper() {
                    MARSHALLING_ERROR
                } else {
                    NO_WATCHER
                }),
                Code(NO_WATCHER),
                Code(MARSHALLING_ERROR),
                ok.clone(),
                // A multi dereferences every op's path before prepping any op.
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
                Code(MARSHALLING_ERROR),
            ],
        ),
        (
            "length -5",
            PathField::Len(-5),
            vec![Code(MARSHALLING_ERROR); 18],
        ),
    ];
    for (what, field, expected) in variants {
        let reqs = path_requests(&field);
        assert_eq!(reqs.len(), expected.len(), "{what}");
        for ((name, opcode, body), exp) in reqs.into_iter().zip(expected) {
            cases.push((format!("{name} with a {what} path"), opcode, body, exp));
        }
    }
    // Data with a hostile length is not null data.
    cases.push((
        "create with data length -5".into(),
        op::CREATE,
        Enc::new()
            .str("/d")
            .i32(-5)
            .acls(raw::OPEN_ACL)
            .i32(0)
            .finish(),
        Code(MARSHALLING_ERROR),
    ));
    cases.push((
        "setData with data length -5".into(),
        op::SET_DATA,
        Enc::new().str("/p").i32(-5).i32(-1).finish(),
        Code(MARSHALLING_ERROR),
    ));
    // A malformed auth packet closes the connection.
    cases.push((
        "auth with auth length -5".into(),
        op::AUTH,
        Enc::new().i32(0).str("digest").i32(-5).finish(),
        Closed,
    ));
    // Watch modes and watcher types outside ZooKeeper's enums.
    for mode in [2, 5, -1] {
        cases.push((
            format!("addWatch mode {mode}"),
            op::ADD_WATCH,
            Enc::new().str("/p").i32(mode).finish(),
            Code(MARSHALLING_ERROR),
        ));
    }
    for kind in [0, 6, -1] {
        for (name, opcode) in [
            ("checkWatches", op::CHECK_WATCHES),
            ("removeWatches", op::REMOVE_WATCHES),
        ] {
            cases.push((
                format!("{name} type {kind}"),
                opcode,
                Enc::new().str("/p").i32(kind).finish(),
                Code(MARSHALLING_ERROR),
            ));
        }
    }
    // ACL ids, validated as ZooKeeper's providers do (ip: IPv4 only, Integer.parseInt fields;
    // digest: exactly two parts by String.split, which drops trailing empty parts).
    let acl_cases: &[(&str, &str, i32)] = &[
        ("ip", "::1", INVALID_ACL),
        ("ip", "0:0:0:0:0:0:0:1", INVALID_ACL),
        ("ip", "fe80::/10", INVALID_ACL),
        ("ip", "1.2.3", INVALID_ACL),
        ("ip", "1.2.3.4.", INVALID_ACL),
        ("ip", "1.2.3.256", INVALID_ACL),
        ("ip", "1.2.3.4/33", INVALID_ACL),
        ("ip", "1.2.3.4/", INVALID_ACL),
        ("ip", "1.2.3.4/-1", INVALID_ACL),
        ("ip", "1.2.3.4/8/8", INVALID_ACL),
        ("ip", "01.2.3.4", OK),
        ("ip", "+1.2.3.4", OK),
        ("ip", "1.2.3.4/+8", OK),
        ("ip", "10.0.0.0/8", OK),
        ("ip", "1.2.3.4/0", OK),
        ("digest", "u:h", OK),
        ("digest", ":h", OK),
        ("digest", "u:h:", OK),
        ("digest", "u:", INVALID_ACL),
        ("digest", "u::", INVALID_ACL),
        ("digest", ":", INVALID_ACL),
        ("digest", "u:h:x", INVALID_ACL),
        ("world", "someone", INVALID_ACL),
        ("super", "x", INVALID_ACL),
        ("sasl", "x", INVALID_ACL),
        ("x509", "CN=x", INVALID_ACL),
    ];
    for (i, (scheme, id, code)) in acl_cases.iter().enumerate() {
        cases.push((
            format!("create with ACL {scheme}:{id}"),
            op::CREATE,
            Enc::new()
                .str(&format!("/acl{i}"))
                .buf(Some(b""))
                .acls(&[(raw::PERM_ALL, scheme, id)])
                .i32(0)
                .finish(),
            Code(*code),
        ));
        cases.push((
            format!("setACL {scheme}:{id}"),
            op::SET_ACL,
            Enc::new()
                .str("/p")
                .acls(&[
                    (raw::PERM_ALL, scheme, id),
                    (raw::PERM_ALL, "world", "anyone"),
                ])
                .i32(-1)
                .finish(),
            Code(*code),
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_matches_zookeeper() {
    timed(240, async {
        let s = TestServer::start_default().await;
        let mut setup = s.raw().await;
        assert_eq!(setup.create("/p", b"x", 0).await.err, 0);
        let mut wrong = Vec::new();
        for (name, opcode, body, expected) in decoding_cases() {
            let got = outcome(&s.addr(), opcode, &body).await;
            if got != expected {
                wrong.push(format!("{name}: got {got:?}, ZooKeeper {expected:?}"));
            }
        }
        // The handshake: a password of length -1 is null (a new session), -5 closes.
        for (len, closes) in [(-1, false), (-5, true)] {
            let mut stream = raw_tcp(&s.addr()).await;
            let body = Enc::new()
                .i32(0)
                .i64(0)
                .i32(30_000)
                .i64(0)
                .i32(len)
                .bool(false)
                .finish();
            stream.write_all(&raw::frame(&body)).await.unwrap();
            let (bytes, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
            if closes != (closed && bytes.is_empty()) {
                wrong.push(format!(
                    "connect with password length {len}: closed {closed} after {} bytes",
                    bytes.len()
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} differences:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert_eq!(setup.get_data("/p", false).await.err, 0);
    })
    .await
}
