//! The server side of SASL DIGEST-MD5 (RFC 2831) as the JDK's SaslServer runs it for
//! ZooKeeper: service `zookeeper`, server name and only realm `zk-sasl-md5`, qop `auth`,
//! charset utf-8, algorithm md5-sess (the challenge leaves qop out: auth is the default), no
//! initial response, nonce count 1. A pure state machine
//! (`Exchange`): a client token in, a server token out or a failure; the caller supplies the
//! password lookup and the nonce's randomness. One exchange per connection: a second response,
//! or a response replayed from another exchange (its nonce is not this exchange's), fails.

use md5::{Digest, Md5};

/// ZooKeeper's SASL service name (the digest-uri's serv-type).
pub const SERVICE: &str = "zookeeper";
/// ZooKeeper's SASL server name: the digest-uri's host and the one realm offered.
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// The JDK's bound on a client response (`MAX_RESPONSE_LENGTH`).
pub const MAX_RESPONSE_LEN: usize = 4096;
/// Random bytes in a nonce; base64 makes them the JDK's 40 characters.
const NONCE_RAW_LEN: usize = 30;

/// Why an exchange failed (the server logs it; the client only learns that it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslError(pub String);

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DIGEST-MD5: {}", self.0)
    }
}

fn fail<T>(why: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(why.into()))
}

enum State {
    /// Waiting for the client's empty first token.
    Start,
    /// The challenge carrying `nonce` was sent; waiting for the digest response.
    Challenged { nonce: String },
    /// Authenticated as `authz`.
    Complete { authz: String },
    /// Failed or finished: every further token fails.
    Dead,
}

/// One DIGEST-MD5 exchange.
pub struct Exchange {
    state: State,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
    }
}

impl Exchange {
    pub fn new() -> Exchange {
        Exchange {
            state: State::Start,
        }
    }

    /// Takes the client's token and returns the server's; `password(user)` looks a user up,
    /// `random` fills the nonce's bytes (a CSPRNG in the server).
    pub fn step(
        &mut self,
        token: &[u8],
        password: &dyn Fn(&str) -> Option<String>,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Vec<u8>, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Dead);
        if token.len() > MAX_RESPONSE_LEN {
            return fail(format!(
                "Invalid digest response length. Got: {} Expected < {MAX_RESPONSE_LEN}",
                token.len()
            ));
        }
        match state {
            State::Start => {
                // The first token is ignored, whatever it holds (DIGEST-MD5 has no initial
                // response; clients send an empty one, and Java 17's server answers any with
                // the challenge, as ZooKeeper 3.8 on it showed).
                let mut raw = [0u8; NONCE_RAW_LEN];
                random(&mut raw);
                use base64::Engine;
                let nonce = base64::engine::general_purpose::STANDARD.encode(raw);
                let challenge = format!(
                    "realm=\"{SERVER_NAME}\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess"
                );
                self.state = State::Challenged { nonce };
                Ok(challenge.into_bytes())
            }
            State::Challenged { nonce } => {
                let (authz, rspauth) = validate(token, &nonce, password)?;
                self.state = State::Complete { authz };
                Ok(format!("rspauth={rspauth}").into_bytes())
            }
            State::Complete { .. } | State::Dead => fail("Authentication already completed"),
        }
    }

    /// True once the client proved its password.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete { .. })
    }

    /// The authorization id (ZooKeeper's `sasl:<id>`) once complete.
    pub fn authorization_id(&self) -> Option<&str> {
        match &self.state {
            State::Complete { authz } => Some(authz),
            _ => None,
        }
    }
}

/// A challenge's or response's directives, as bytes (quoted values unescaped).
#[derive(Default)]
pub(crate) struct Directives {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Directives {
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses RFC 2831's `1#( key "=" ( token | quoted-string ) )`: elements separated by commas
/// and optional white space, empty elements allowed. A directive given twice is an error, as in
/// the JDK (which allows only `realm` to repeat, and only in a challenge).
pub(crate) fn parse_directives(b: &[u8]) -> Result<Directives, SaslError> {
    let mut d = Directives::default();
    let mut i = 0;
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    while i < b.len() {
        while i < b.len() && (ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && !ws(b[i]) {
            i += 1;
        }
        let key = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if key.is_empty() || i == b.len() || b[i] != b'=' {
            return fail("digest response format violation. Directive without value");
        }
        i += 1;
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return fail("digest response format violation. Unterminated quote"),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && b[i] != b',' && !ws(b[i]) {
                value.push(b[i]);
                i += 1;
            }
        }
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] != b',' {
            return fail("digest response format violation. Junk after a value");
        }
        if d.get(&key).is_some() {
            return fail(format!("Only one {key} allowed"));
        }
        d.pairs.push((key, value));
    }
    Ok(d)
}

/// Checks a digest response against the exchange's `nonce`; returns the authorization id and
/// the response-auth value.
fn validate(
    token: &[u8],
    nonce: &str,
    password: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String), SaslError> {
    let d = parse_directives(token)?;
    let utf8 = match d.get("charset") {
        None => false,
        Some(c) if c.eq_ignore_ascii_case(b"utf-8") => true,
        Some(_) => return fail("digest response format violation. Incompatible charset"),
    };
    let text = |b: &[u8]| -> Result<String, SaslError> {
        if utf8 {
            String::from_utf8(b.to_vec())
                .or_else(|_| fail("digest response format violation. Invalid UTF-8"))
        } else {
            Ok(b.iter().map(|&c| c as char).collect())
        }
    };
    let Some(username) = d.get("username") else {
        return fail("digest response format violation. Missing username.");
    };
    let username = text(username)?;
    let realm = text(d.get("realm").unwrap_or(b""))?;
    if realm != SERVER_NAME {
        return fail(format!(
            "digest response format violation. Nonexistent realm: {realm}"
        ));
    }
    if d.get("nonce") != Some(nonce.as_bytes()) {
        return fail("digest response format violation. Mismatched nonce.");
    }
    let Some(cnonce) = d.get("cnonce") else {
        return fail("digest response format violation. Missing cnonce.");
    };
    let nc = d
        .get("nc")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u32::from_str_radix(v, 16).ok());
    if nc != Some(1) {
        return fail("Nonce count does not match");
    }
    let qop = d.get("qop").unwrap_or(b"auth");
    if qop != b"auth" {
        return fail(format!(
            "digest response format violation. Invalid QOP: {}",
            String::from_utf8_lossy(qop)
        ));
    }
    let uri = d.get("digest-uri").unwrap_or(b"");
    let expected_uri = format!("{SERVICE}/{SERVER_NAME}");
    if !uri.eq_ignore_ascii_case(expected_uri.as_bytes()) {
        return fail(format!(
            "digest response format violation. Mismatched URI: {}; expecting: {expected_uri}",
            String::from_utf8_lossy(uri)
        ));
    }
    let Some(response) = d.get("response") else {
        return fail("digest response format violation. Missing response.");
    };
    let authzid = d.get("authzid");
    // Looked up (and hashed) before any comparison, so an unknown user costs the same work as
    // a wrong password.
    let (pw, known) = match password(&username) {
        Some(pw) => (pw, true),
        None => (String::new(), false),
    };
    let parts = Parts {
        username: &username,
        realm: &realm,
        password: &pw,
        utf8,
        nonce: nonce.as_bytes(),
        cnonce,
        authzid,
        uri,
    };
    let expected = response_value(&parts, b"AUTHENTICATE");
    if !constant_time_eq(&expected, response) || !known {
        return fail("digest response format violation. Mismatched response.");
    }
    let rspauth = String::from_utf8(response_value(&parts, b"")).expect("hex is ASCII");
    // ZooKeeper's callback handler authorizes every authenticated user and makes the
    // authorization id the authentication id (whatever authzid the client asked for).
    Ok((username, rspauth))
}

/// What the response value is computed from.
pub(crate) struct Parts<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub utf8: bool,
    pub nonce: &'a [u8],
    pub cnonce: &'a [u8],
    pub authzid: Option<&'a [u8]>,
    pub uri: &'a [u8],
}

/// RFC 2831 2.1.2.1 with qop auth and nc 1: `method` is `AUTHENTICATE` for the client's
/// response, empty for the server's response-auth. Lowercase hex.
pub(crate) fn response_value(p: &Parts<'_>, method: &[u8]) -> Vec<u8> {
    let mut inner = Md5::new();
    inner.update(latin1_if_possible(p.username, p.utf8));
    inner.update(b":");
    inner.update(latin1_if_possible(p.realm, p.utf8));
    inner.update(b":");
    inner.update(latin1_if_possible(p.password, p.utf8));
    let mut a1 = Md5::new();
    a1.update(inner.finalize());
    a1.update(b":");
    a1.update(p.nonce);
    a1.update(b":");
    a1.update(p.cnonce);
    if let Some(z) = p.authzid {
        a1.update(b":");
        a1.update(z);
    }
    let mut a2 = Md5::new();
    a2.update(method);
    a2.update(b":");
    a2.update(p.uri);
    let mut kd = Md5::new();
    kd.update(hex(&a1.finalize()));
    kd.update(b":");
    kd.update(p.nonce);
    kd.update(b":00000001:");
    kd.update(p.cnonce);
    kd.update(b":auth:");
    kd.update(hex(&a2.finalize()));
    hex(&kd.finalize())
}

/// RFC 2831: with charset utf-8, a string all of whose characters fit ISO 8859-1 is hashed in
/// ISO 8859-1; otherwise in UTF-8. Without it, ISO 8859-1 with `?` for what does not fit (the
/// JDK's `getBytes("8859_1")`).
fn latin1_if_possible(s: &str, utf8: bool) -> Vec<u8> {
    if utf8 && s.chars().any(|c| c as u32 > 0xFF) {
        return s.as_bytes().to_vec();
    }
    s.chars()
        .map(|c| if (c as u32) <= 0xFF { c as u8 } else { b'?' })
        .collect()
}

fn hex(b: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    b.iter()
        .flat_map(|&x| [DIGITS[(x >> 4) as usize], DIGITS[(x & 15) as usize]])
        .collect()
}

/// Equal, in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, written from RFC 2831 for these tests.
    fn client_response(
        challenge: &[u8],
        user: &str,
        password: &str,
        cnonce: &str,
        authzid: Option<&str>,
    ) -> String {
        let d = parse_directives(challenge).unwrap();
        let realm = String::from_utf8(d.get("realm").unwrap().to_vec()).unwrap();
        let nonce = d.get("nonce").unwrap().to_vec();
        let uri = format!("{SERVICE}/{SERVER_NAME}");
        let p = Parts {
            username: user,
            realm: &realm,
            password,
            utf8: true,
            nonce: &nonce,
            cnonce: cnonce.as_bytes(),
            authzid: authzid.map(str::as_bytes),
            uri: uri.as_bytes(),
        };
        let response = String::from_utf8(response_value(&p, b"AUTHENTICATE")).unwrap();
        let mut s = format!(
            "charset=utf-8,username=\"{user}\",realm=\"{realm}\",nonce=\"{}\",nc=00000001,\
             cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={response},qop=auth",
            String::from_utf8(nonce.clone()).unwrap()
        );
        if let Some(z) = authzid {
            s.push_str(&format!(",authzid=\"{z}\""));
        }
        s
    }

    fn users(name: &str) -> Option<String> {
        match name {
            "bob" => Some("secret".into()),
            "jürgen" => Some("pässwörd€".into()),
            _ => None,
        }
    }

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |b: &mut [u8]| {
            n = n.wrapping_add(1);
            b.iter_mut().for_each(|x| *x = n);
        }
    }

    #[test]
    fn rfc_2831_example() {
        // RFC 2831 section 4's IMAP example (its qop auth, md5-sess arithmetic).
        let p = Parts {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            utf8: false,
            nonce: b"OA6MG9tEQGm2hh",
            cnonce: b"OA6MHXh6VqTrRk",
            authzid: None,
            uri: b"imap/elwood.innosoft.com",
        };
        assert_eq!(
            response_value(&p, b"AUTHENTICATE"),
            b"d388dad90d4bbd760a152321f2143af7"
        );
        assert_eq!(response_value(&p, b""), b"ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn full_exchange() {
        let mut rng = counter();
        let mut x = Exchange::new();
        let challenge = x.step(b"", &users, &mut rng).unwrap();
        let text = String::from_utf8(challenge.clone()).unwrap();
        assert!(text.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{text}");
        // No qop: the JDK leaves out the default (auth) it offers.
        assert!(
            text.ends_with("\",charset=utf-8,algorithm=md5-sess"),
            "{text}"
        );
        let nonce = parse_directives(&challenge)
            .unwrap()
            .get("nonce")
            .unwrap()
            .len();
        assert_eq!(nonce, 40);
        assert!(!x.is_complete());
        let resp = client_response(&challenge, "bob", "secret", "abc", None);
        let rspauth = x.step(resp.as_bytes(), &users, &mut rng).unwrap();
        assert!(x.is_complete());
        assert_eq!(x.authorization_id(), Some("bob"));
        // The client checks the server knew the password too.
        let d = parse_directives(&challenge).unwrap();
        let p = Parts {
            username: "bob",
            realm: SERVER_NAME,
            password: "secret",
            utf8: true,
            nonce: d.get("nonce").unwrap(),
            cnonce: b"abc",
            authzid: None,
            uri: b"zookeeper/zk-sasl-md5",
        };
        let mut expected = b"rspauth=".to_vec();
        expected.extend(response_value(&p, b""));
        assert_eq!(rspauth, expected);
        // Nothing more is accepted.
        assert!(x.step(b"", &users, &mut rng).is_err());
        assert!(x.step(resp.as_bytes(), &users, &mut rng).is_err());
    }

    #[test]
    fn non_latin1_credentials_and_authzid() {
        let mut rng = counter();
        let mut x = Exchange::new();
        let challenge = x.step(b"", &users, &mut rng).unwrap();
        let resp = client_response(&challenge, "jürgen", "pässwörd€", "c", Some("admin"));
        x.step(resp.as_bytes(), &users, &mut rng).unwrap();
        // ZooKeeper's handler authorizes as the authentication id, not the asked authzid.
        assert_eq!(x.authorization_id(), Some("jürgen"));
    }

    #[test]
    fn wrong_password_and_unknown_user_fail() {
        for (user, pw) in [("bob", "wrong"), ("eve", "secret"), ("eve", "")] {
            let mut rng = counter();
            let mut x = Exchange::new();
            let challenge = x.step(b"", &users, &mut rng).unwrap();
            let resp = client_response(&challenge, user, pw, "abc", None);
            let e = x.step(resp.as_bytes(), &users, &mut rng).unwrap_err();
            assert!(e.0.contains("Mismatched response"), "{e}");
            assert!(!x.is_complete());
            assert_eq!(x.authorization_id(), None);
            // A failed exchange stays failed, even with the right answer.
            let good = client_response(&challenge, "bob", "secret", "abc", None);
            assert!(x.step(good.as_bytes(), &users, &mut rng).is_err());
        }
    }

    #[test]
    fn replayed_response_fails() {
        let mut rng = counter();
        let mut first = Exchange::new();
        let challenge = first.step(b"", &users, &mut rng).unwrap();
        let resp = client_response(&challenge, "bob", "secret", "abc", None);
        first.step(resp.as_bytes(), &users, &mut rng).unwrap();
        // The same response (nonce, cnonce, nc) on a new exchange: its nonce is stale.
        let mut second = Exchange::new();
        second.step(b"", &users, &mut rng).unwrap();
        let e = second.step(resp.as_bytes(), &users, &mut rng).unwrap_err();
        assert!(e.0.contains("Mismatched nonce"), "{e}");
    }

    #[test]
    fn bad_tokens_fail() {
        let challenge_of = |x: &mut Exchange| x.step(b"", &users, &mut counter()).unwrap();
        // An initial response is ignored: the challenge comes back.
        assert_eq!(
            Exchange::new().step(b"x", &users, &mut counter()).unwrap(),
            Exchange::new().step(b"", &users, &mut counter()).unwrap()
        );
        let mut x = Exchange::new();
        let c = challenge_of(&mut x);
        let good = client_response(&c, "bob", "secret", "abc", None);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"garbage".to_vec(),
            b"\xff\xfe\x00\x01".to_vec(),
            b"username=\"bob".to_vec(),
            b"=,=,=".to_vec(),
            good.replace("nc=00000001", "nc=00000002").into_bytes(),
            good.replace("nc=00000001,", "").into_bytes(),
            good.replace("zookeeper/zk-sasl-md5", "imap/zk-sasl-md5")
                .into_bytes(),
            good.replace("realm=\"zk-sasl-md5\",", "").into_bytes(),
            good.replace("qop=auth", "qop=auth-conf").into_bytes(),
            good.replace("charset=utf-8", "charset=latin1").into_bytes(),
            format!("{good},username=\"bob\"").into_bytes(),
            vec![b'a'; MAX_RESPONSE_LEN + 1],
        ];
        for token in cases {
            let mut x = Exchange::new();
            let c = challenge_of(&mut x);
            // Same nonce as `good` (the same counter): only the damage differs.
            assert_eq!(c, challenge_of(&mut Exchange::new()));
            let r = x.step(&token, &users, &mut counter());
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(&token));
            assert!(!x.is_complete());
        }
        // An over-long token fails before anything, even as a first token.
        assert!(Exchange::new()
            .step(&vec![0u8; MAX_RESPONSE_LEN + 1], &users, &mut counter())
            .is_err());
    }

    #[test]
    fn directives_parse_as_rfc_2831_says() {
        let d = parse_directives(b" a=1 ,, B=\"x\\\"y, z\" ,c=\"\"").unwrap();
        assert_eq!(d.get("a"), Some(&b"1"[..]));
        assert_eq!(d.get("b"), Some(&b"x\"y, z"[..]));
        assert_eq!(d.get("c"), Some(&b""[..]));
        assert!(parse_directives(b"a=1 2").is_err());
        assert!(parse_directives(b"a").is_err());
    }
}
