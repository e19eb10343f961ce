//! The server over real loopback sockets: framing, keep-alive, and every refusal.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn start(limits: Limits) -> SocketAddr {
    start_with(limits, Security::Plain)
}

/// Echoes the method, path, query and body; `/stream` streams 100 KiB in small writes;
/// `/tls` says whether the request came over TLS.
fn start_with(limits: Limits, security: Security) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let handler = |req: &Request, body: &mut dyn Read| {
        if req.path == "/stream" {
            return Response::streamed(
                200,
                "application/octet-stream",
                Box::new(|out: &mut dyn Write| {
                    for i in 0..100 * 1024u32 / 16 {
                        out.write_all(format!("{i:015}\n").as_bytes())?;
                    }
                    Ok(())
                }),
            );
        }
        if req.path == "/tls" {
            let answer = format!("secure={} chain={}", req.secure, req.client_chain.len());
            return Response::new(200, "text/plain", answer);
        }
        if req.path == "/ignore-body" {
            return Response::new(200, "text/plain", "ignored");
        }
        if req.path == "/then" {
            return Response::new(200, "text/plain", "first").then(Box::new(|| {
                THEN_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        let mut b = String::new();
        body.read_to_string(&mut b).unwrap();
        let q = req.param("q").unwrap_or("-");
        Response::new(
            200,
            "text/plain",
            format!("{} {} q={q} body={b}", req.method, req.path),
        )
        .header("X-Test", "1")
    };
    serve_secure("test-http", listener, limits, security, Arc::new(handler))
        .unwrap()
        .local_addr()
}

/// Set by `/then`'s action.
static THEN_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response: (status, headers, body). Handles Content-Length and chunked bodies.
fn read_response(s: &mut impl Read) -> (u16, Vec<(String, String)>, Vec<u8>) {
    read_answer(s, false)
}

/// As [`read_response`]; the answer to a HEAD request has the headers of a body but none.
fn read_answer(s: &mut impl Read, to_head: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed inside a head");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if to_head {
        return (status, headers, body);
    }
    if let Some(n) = get("content-length") {
        body.resize(n.parse().unwrap(), 0);
        s.read_exact(&mut body).unwrap();
    } else if get("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let n =
                usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
                    .unwrap();
            let mut chunk = vec![0u8; n + 2];
            s.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        s.read_to_end(&mut body).unwrap();
    }
    (status, headers, body)
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn requests_on_one_kept_connection_pipelined_or_not() {
    let addr = start(Limits {
        max_body: 1024,
        ..Limits::default()
    });
    let mut s = connect(addr);
    s.write_all(b"GET /a%20b?q=x+y HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(body, b"GET /a b q=x y body=");
    assert!(headers.contains(&("x-test".into(), "1".into())));
    assert!(headers.contains(&("connection".into(), "keep-alive".into())));
    // Two pipelined requests, the first with a body.
    s.write_all(
        b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /ignore-body HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /last HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s).2, b"POST /p q=- body=hello");
    assert_eq!(read_response(&mut s).2, b"ignored");
    // The unread body of the second was skipped: the third parses.
    assert_eq!(read_response(&mut s).2, b"GET /last q=- body=");
    s.write_all(b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, headers, _) = read_answer(&mut s, true);
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "17".into())));
    assert!(
        closed(&mut s),
        "no body follows a HEAD answer, and the connection closes"
    );
}

#[test]
fn a_streamed_body_is_chunked_for_http11_and_ends_at_close_for_http10() {
    let addr = start(Limits::default());
    let expected: Vec<u8> = (0..100 * 1024u32 / 16)
        .flat_map(|i| format!("{i:015}\n").into_bytes())
        .collect();
    let mut s = connect(addr);
    s.write_all(b"GET /stream HTTP/1.1\r\n\r\n").unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(headers.contains(&("transfer-encoding".into(), "chunked".into())));
    assert_eq!(body, expected);
    s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let (_, headers, body) = read_response(&mut s);
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert_eq!(body, expected);
}

/// Sends `raw` and returns the status answered and whether the server closed afterwards.
fn refused(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let (status, headers, _) = read_response(&mut s);
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert!(closed(&mut s));
    status
}

#[test]
fn bad_requests_get_their_status_and_a_closed_connection() {
    let addr = start(Limits {
        max_head_bytes: 1024,
        max_body: 10,
        ..Limits::default()
    });
    assert_eq!(refused(addr, b"NOT HTTP\r\n\r\n"), 400);
    assert_eq!(refused(addr, b"GET / HTTP/2.0\r\n\r\n"), 505);
    assert_eq!(
        refused(addr, b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        400
    );
    assert_eq!(
        refused(
            addr,
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ),
        400
    );
    assert_eq!(
        refused(
            addr,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        411
    );
    assert_eq!(
        refused(addr, b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"),
        413
    );
    // A header over the limit, whether the head has ended or is still coming.
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
    assert_eq!(refused(addr, big.as_bytes()), 431);
    let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(4000));
    assert_eq!(refused(addr, endless.as_bytes()), 431);
}

#[test]
fn a_slow_client_gets_408_and_an_idle_one_is_closed() {
    let addr = start(Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut slow = connect(addr);
    slow.write_all(b"GET / HT").unwrap();
    let (status, _, _) = read_response(&mut slow);
    assert_eq!(status, 408);
    let mut idle = connect(addr);
    assert!(closed(&mut idle), "an idle connection is closed, no answer");
}

#[test]
fn connections_over_the_limit_get_503_and_the_others_keep_working() {
    let addr = start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut s).0, 200);
            s
        })
        .collect();
    let mut extra = connect(addr);
    assert_eq!(read_response(&mut extra).0, 503);
    // The held connections still answer; once one closes, a new one is served.
    held[0].write_all(b"GET /y HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut held[0]).0, 200);
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(addr);
        s.write_all(b"GET /z HTTP/1.1\r\n\r\n").unwrap();
        match read_response(&mut s).0 {
            200 => break,
            503 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("status {other}"),
        }
    }
}

#[test]
fn an_upload_that_expects_100_continue_gets_it_and_then_runs_after_the_answer() {
    let addr = start(Limits {
        max_body: 100,
        ..Limits::default()
    });
    let mut s = connect(addr);
    s.write_all(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, &body[..]), (200, &b"POST /up q=- body=hello"[..]));

    // An action after the response: run once it is sent, the connection closed.
    let mut s = connect(addr);
    s.write_all(b"GET /then HTTP/1.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    assert!(raw.ends_with(b"first"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !THEN_RAN.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the action did not run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A self-signed certificate for 127.0.0.1: the server's config, and a client config that
/// trusts it.
fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn tls_connect(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    rustls::StreamOwned::new(conn, connect(addr))
}

#[test]
fn tls_keeps_connections_streams_and_tells_the_handler() {
    let (server, client) = tls_pair();
    let limits = Limits {
        max_body: 1024,
        ..Limits::default()
    };
    let addr = start_with(limits, Security::Tls(server));
    let mut s = tls_connect(addr, &client);
    s.write_all(b"GET /tls HTTP/1.1\r\n\r\n").unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"secure=true chain=0"[..])
    );
    assert!(headers.contains(&(
        "strict-transport-security".into(),
        "max-age=86400; includeSubDomains".into()
    )));
    // The same connection: a chunked stream, then a body.
    s.write_all(b"GET /stream HTTP/1.1\r\n\r\n").unwrap();
    let (_, _, body) = read_response(&mut s);
    assert_eq!(body.len(), 100 * 1024);
    s.write_all(b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        .unwrap();
    assert_eq!(read_response(&mut s).2, b"POST /p q=- body=abc");
    // Plain HTTP on a TLS port: no answer, the connection closed.
    let mut plain = connect(addr);
    plain.write_all(b"GET /tls HTTP/1.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_unified_port_answers_both_and_a_dribbled_handshake_is_cut_at_the_deadline() {
    let (server, client) = tls_pair();
    let addr = start_with(
        Limits {
            read_timeout: Duration::from_millis(800),
            ..Limits::default()
        },
        Security::Unified(server),
    );
    let mut s = tls_connect(addr, &client);
    s.write_all(b"GET /tls HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).2, b"secure=true chain=0");
    let mut p = connect(addr);
    p.write_all(b"GET /tls HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut p).2, b"secure=false chain=0");

    // A handshake record announced as 512 bytes, sent a byte every 100 ms: each socket read
    // is quick, but the whole handshake must fit the 800 ms.
    let mut slow = connect(addr);
    let t0 = std::time::Instant::now();
    slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    slow.set_nonblocking(false).unwrap();
    let mut cut = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        if slow.write_all(&[0]).is_err() {
            cut = Some(t0.elapsed());
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut b = [0u8; 16];
        if matches!(slow.read(&mut b), Ok(0)) {
            cut = Some(t0.elapsed());
            break;
        }
    }
    let cut = cut.expect("a dribbling handshake was never cut");
    assert!(cut < Duration::from_millis(2500), "cut after {cut:?}");
}
