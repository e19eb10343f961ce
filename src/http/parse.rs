//! Reading an HTTP/1.x request head: the request line, the headers, the target's path and
//! query. Pure functions over bytes, so every malformed input has a test and a status code.

/// Why a head was refused, as the status the server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: a request line or header that is not HTTP.
    BadRequest,
    /// 431: too many headers (the byte limit is checked while reading).
    TooManyHeaders,
    /// 505: `HTTP/2.0` and the like.
    Version,
}

/// A parsed head. `path` is percent-decoded; `query` pairs are decoded too (`+` is a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// `HTTP/1.1` (true) or `HTTP/1.0`: the default for keep-alive differs.
    pub http11: bool,
}

/// More headers than any real client sends to these endpoints.
pub const MAX_HEADERS: usize = 100;

/// Where the head ends (the index just past `\r\n\r\n`, or past `\n\n` from lenient clients).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1..].starts_with(b"\r\n") {
                return Some(i + 3);
            }
            if buf[i + 1..].starts_with(b"\n") {
                return Some(i + 2);
            }
        }
        i += 1;
    }
    None
}

/// Parses a complete head (as delimited by [`head_end`]).
pub fn parse_head(raw: &[u8]) -> Result<Head, Refusal> {
    let text = std::str::from_utf8(raw).map_err(|_| Refusal::BadRequest)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(Refusal::BadRequest)?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(Refusal::BadRequest),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Refusal::BadRequest);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(Refusal::Version),
        _ => return Err(Refusal::BadRequest),
    };
    if !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path, false).ok_or(Refusal::BadRequest)?;
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((
            percent_decode(k, true).ok_or(Refusal::BadRequest)?,
            percent_decode(v, true).ok_or(Refusal::BadRequest)?,
        ));
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        // Obsolete line folding (RFC 9112 5.2) and headers without a name are refused.
        if line.starts_with([' ', '\t']) {
            return Err(Refusal::BadRequest);
        }
        let (name, value) = line.split_once(':').ok_or(Refusal::BadRequest)?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(Refusal::BadRequest);
        }
        if headers.len() == MAX_HEADERS {
            return Err(Refusal::TooManyHeaders);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        path,
        query,
        headers,
        http11,
    })
}

/// `%XX` decoding; `plus` also turns `+` into a space (form-encoded query strings). `None` for
/// a broken escape or bytes that do not decode to UTF-8.
fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The reason phrase of a status this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_get_with_a_query() {
        let raw = b"GET /commands/watches_by_path?a=1&b=x%20y+z&flag HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n\r\n";
        let end = head_end(raw).unwrap();
        assert_eq!(end, raw.len());
        let h = parse_head(&raw[..end]).unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/commands/watches_by_path");
        assert_eq!(
            h.query,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("flag".into(), "".into())
            ]
        );
        assert_eq!(h.headers[1], ("X-A".into(), "v".into()));
        assert!(h.http11);
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn malformed_heads_are_refused_with_their_status() {
        let bad = |s: &str| parse_head(s.as_bytes()).unwrap_err();
        assert_eq!(bad("GET /\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("GET / HTTP/1.1 extra\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("get / HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("GET nopath HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("GET / HTTP/2.0\r\n\r\n"), Refusal::Version);
        assert_eq!(bad("GET / SPDY/3\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("GET /%zz HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(bad("GET /%ff HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
        assert_eq!(
            bad("GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Refusal::BadRequest
        );
        assert_eq!(
            bad("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"),
            Refusal::BadRequest
        );
        assert_eq!(
            bad("GET / HTTP/1.1\r\nBad Name: b\r\n\r\n"),
            Refusal::BadRequest
        );
        assert_eq!(bad("GET / HTTP/1.1\r\n: b\r\n\r\n"), Refusal::BadRequest);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            bad(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Refusal::TooManyHeaders
        );
        assert!(parse_head(&[0xff, 0xfe]).is_err());
    }
}
