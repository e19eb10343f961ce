//! The server side of SASL GSSAPI (RFC 4752) as the JDK's GssKrb5Server runs it for
//! ZooKeeper, and ZooKeeper's naming of the authenticated principal. A state machine over a
//! GSS-API acceptor (`Acceptor`: the real one is `gssapi::Context`; the tests use a fake):
//!
//! 1. the client's initial token goes to gss_accept_sec_context until the context is
//!    established; a token it returns (mutual authentication's AP-REP) goes back, and the
//!    client answers it with an empty token;
//! 2. the server offers its security layers, wrapped: one byte of layers (only "none", as
//!    ZooKeeper's default qop `auth`) and a 3-byte maximum message size (65536);
//! 3. the client answers, wrapped: the layer it chose, its maximum size, and an authorization
//!    id; the login is complete and the server's last token is null.
//!
//! The id the connection gets is ZooKeeper's (SaslServerCallbackHandler): the authenticated
//! principal's short name by the `security.auth_to_local` rules (`AuthToLocal`; DEFAULT
//! unless set), then `/host` and `@REALM` unless `kerberos.removeHostFromPrincipal` /
//! `kerberos.removeRealmFromPrincipal`. The client's authorization id is not trusted for it
//! (docs/decisions.md).

use super::sasl_digest::SaslError;

/// Bit of "no security layer" in the offer (the only one offered, as with qop `auth`).
const NO_SECURITY_LAYER: u8 = 1;
/// The JDK's default maximum receive buffer, offered in the layer negotiation.
const MAX_RECEIVE_SIZE: u32 = 65536;

fn fail<T>(why: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(format!("GSSAPI: {}", why.into())))
}

/// A GSS-API acceptor context.
pub trait Acceptor {
    /// One accept call: the token for the client (maybe empty) and, once established, the
    /// client's principal.
    fn accept(&mut self, token: &[u8]) -> Result<(Vec<u8>, Option<String>), String>;
    fn wrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String>;
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, String>;
}

impl Acceptor for super::gssapi::Context {
    fn accept(&mut self, token: &[u8]) -> Result<(Vec<u8>, Option<String>), String> {
        let a = super::gssapi::Context::accept(self, token)?;
        Ok((a.token, a.peer))
    }
    fn wrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        super::gssapi::Context::wrap(self, msg)
    }
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
        super::gssapi::Context::unwrap(self, token)
    }
}

/// `security.auth_to_local`: Hadoop's rules as ZooKeeper's KerberosName takes them, in order,
/// the first that gives a name winning:
///
/// - `DEFAULT`: the first component of a principal of the default realm;
/// - `RULE:[n:format](match)s/from/to/g`: for a principal of `n` components, `format` with
///   `$0` the realm and `$1`, `$2` the components; kept if it matches `match` whole (when
///   given), then edited by the sed expression (when given; `g` replaces every match).
///
/// The expressions are Rust regexes, which take what rules are written with (no
/// back-references, which such a rule's error at start says; a match cannot hold `)` and a
/// sed expression cannot hold `/`, as in Java's grammar).
#[derive(Clone)]
pub struct AuthToLocal {
    text: String,
    rules: std::sync::Arc<Vec<Rule>>,
}

#[derive(Debug)]
enum Rule {
    Default,
    Map {
        components: usize,
        format: String,
        matches: Option<regex::Regex>,
        /// from, to (in regex's replacement syntax), every match.
        sed: Option<(regex::Regex, String, bool)>,
    },
}

impl std::fmt::Debug for AuthToLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl PartialEq for AuthToLocal {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for AuthToLocal {}

impl Default for AuthToLocal {
    fn default() -> Self {
        AuthToLocal::parse("DEFAULT").expect("the default rules")
    }
}

/// Java's replacement syntax (`$n` a group, `\x` a literal x) in regex's (`${n}`, `$$`).
fn java_replacement(to: &str) -> String {
    let mut out = String::new();
    let mut it = to.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('$') => out.push_str("$$"),
                Some(x) => out.push(x),
                None => {}
            },
            '$' => {
                let mut n = String::new();
                while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    it.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            c => out.push(c),
        }
    }
    out
}

impl AuthToLocal {
    /// Parses the rules as KerberosName.parseRules does; an error names what is wrong.
    pub fn parse(text: &str) -> Result<AuthToLocal, String> {
        let grammar = regex::Regex::new(
            r"^\s*(?:(DEFAULT)|RULE:\[(\d*):([^\]]*)\](?:\(([^)]*)\))?(?:s/([^/]*)/([^/]*)/(g)?)?)",
        )
        .expect("the rule grammar");
        let regex = |what: &str, re: &str| {
            regex::Regex::new(re)
                .map_err(|e| format!("{what} {re:?} of an auth_to_local rule: {e}"))
        };
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let c = grammar
                .captures(rest)
                .filter(|c| c.get(0).is_some_and(|m| !m.as_str().trim().is_empty()))
                .ok_or_else(|| format!("Invalid rule: {rest}"))?;
            if c.get(1).is_some() {
                rules.push(Rule::Default);
            } else {
                let components = c[2]
                    .parse()
                    .map_err(|_| format!("Invalid rule: {rest} (no component count)"))?;
                let matches = match c.get(4) {
                    Some(m) => Some(regex("match", &format!("^(?:{})$", m.as_str()))?),
                    None => None,
                };
                let sed = match (c.get(5), c.get(6)) {
                    (Some(from), Some(to)) => Some((
                        regex("pattern", from.as_str())?,
                        java_replacement(to.as_str()),
                        c.get(7).is_some(),
                    )),
                    _ => None,
                };
                rules.push(Rule::Map {
                    components,
                    format: c[3].to_string(),
                    matches,
                    sed,
                });
            }
            rest = &rest[c.get(0).unwrap().end()..];
        }
        Ok(AuthToLocal {
            text: text.to_string(),
            rules: std::sync::Arc::new(rules),
        })
    }

    /// KerberosName.getShortName for `params` = [realm, component...]: Ok(None) when no rule
    /// applies, an error when a rule's format is bad or its result is not a simple name.
    fn short_name(&self, params: &[&str], default_realm: &str) -> Result<Option<String>, String> {
        for rule in self.rules.iter() {
            let result = match rule {
                Rule::Default => (params[0] == default_realm).then(|| params[1].to_string()),
                Rule::Map {
                    components,
                    format,
                    matches,
                    sed,
                } if *components == params.len() - 1 => {
                    let base = fill(format, params)?;
                    if matches.as_ref().is_none_or(|m| m.is_match(&base)) {
                        Some(match sed {
                            None => base,
                            Some((from, to, true)) => from.replace_all(&base, to.as_str()).into(),
                            Some((from, to, false)) => from.replace(&base, to.as_str()).into(),
                        })
                    } else {
                        None
                    }
                }
                Rule::Map { .. } => None,
            };
            if let Some(r) = result {
                if r.contains(['/', '@']) {
                    return Err(format!("Non-simple name {r} after auth_to_local rule"));
                }
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

/// A rule's format with `$n` replaced by `params[n]` (KerberosName.replaceParameters).
fn fill(format: &str, params: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    let mut it = format.chars().peekable();
    while let Some(c) = it.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = String::new();
        while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
            n.push(*d);
            it.next();
        }
        let i: usize = n
            .parse()
            .map_err(|_| format!("bad format in username mapping in {format}"))?;
        out.push_str(
            params
                .get(i)
                .ok_or_else(|| format!("index {i} from {format} is outside the valid range"))?,
        );
    }
    Ok(out)
}

/// ZooKeeper's naming of a Kerberos principal (its KerberosName and SaslServerCallbackHandler).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameRules {
    /// krb5.conf's default realm.
    pub default_realm: Option<String>,
    /// `kerberos.removeHostFromPrincipal`.
    pub remove_host: bool,
    /// `kerberos.removeRealmFromPrincipal`.
    pub remove_realm: bool,
    /// `security.auth_to_local`.
    pub auth_to_local: AuthToLocal,
}

impl NameRules {
    /// The `sasl` id of `principal` (`service[/host]@REALM`).
    pub fn id_of(&self, principal: &str) -> String {
        let (name, realm) = match principal.rsplit_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (principal, None),
        };
        let (service, host) = match name.split_once('/') {
            Some((s, h)) => (s, Some(h)),
            None => (name, None),
        };
        let short = match (realm, host) {
            (None, None) => Ok(Some(service.to_string())),
            (None, Some(_)) => Ok(None),
            (Some(r), None) => self
                .auth_to_local
                .short_name(&[r, service], self.default_realm.as_deref().unwrap_or("")),
            (Some(r), Some(h)) => self.auth_to_local.short_name(
                &[r, service, h],
                self.default_realm.as_deref().unwrap_or(""),
            ),
        };
        // Where no rule gives a name (or one fails), ZooKeeper keeps the client's
        // authorization id, which its clients set to their own principal: the principal.
        let Ok(Some(short)) = short else {
            return principal.to_string();
        };
        let mut id = short;
        if let (false, Some(h)) = (self.remove_host, host) {
            id.push('/');
            id.push_str(h);
        }
        if let (false, Some(r)) = (self.remove_realm, realm) {
            id.push('@');
            id.push_str(r);
        }
        id
    }
}

enum State {
    /// Feeding the client's tokens to the acceptor.
    Accepting,
    /// The context is up and its last token went to the client; waiting for the empty answer.
    Established { peer: String },
    /// The layers were offered; waiting for the client's choice.
    Offered { peer: String },
    /// Logged in as `authz`.
    Complete { authz: String },
    /// Failed or finished: every further token fails.
    Dead,
}

/// One GSSAPI login.
pub struct Exchange<A> {
    gss: A,
    rules: NameRules,
    state: State,
}

impl<A: Acceptor> Exchange<A> {
    pub fn new(gss: A, rules: NameRules) -> Exchange<A> {
        Exchange {
            gss,
            rules,
            state: State::Accepting,
        }
    }

    /// Takes the client's token and returns the server's (None: a null token, the last).
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, SaslError> {
        match std::mem::replace(&mut self.state, State::Dead) {
            State::Accepting => {
                let (out, peer) = self.gss.accept(token).map_err(SaslError)?;
                match peer {
                    None => {
                        self.state = State::Accepting;
                        Ok(Some(out))
                    }
                    Some(peer) if !out.is_empty() => {
                        self.state = State::Established { peer };
                        Ok(Some(out))
                    }
                    Some(peer) => self.offer(peer),
                }
            }
            State::Established { peer } => {
                if !token.is_empty() {
                    return fail("the client's answer to the context's last token is not empty");
                }
                self.offer(peer)
            }
            State::Offered { peer } => {
                let msg = self.gss.unwrap(token).map_err(SaslError)?;
                if msg.len() < 4 {
                    return fail(format!(
                        "the client's choice of layer is {} bytes, not 4 or more",
                        msg.len()
                    ));
                }
                if msg[0] & NO_SECURITY_LAYER == 0 {
                    return fail(format!(
                        "the client chose security layer {:#x}, which was not offered",
                        msg[0]
                    ));
                }
                if std::str::from_utf8(&msg[4..]).is_err() {
                    return fail("the authorization id is not UTF-8");
                }
                let authz = self.rules.id_of(&peer);
                self.state = State::Complete { authz };
                Ok(None)
            }
            State::Complete { .. } | State::Dead => fail("the login is already over"),
        }
    }

    fn offer(&mut self, peer: String) -> Result<Option<Vec<u8>>, SaslError> {
        let size = MAX_RECEIVE_SIZE.to_be_bytes();
        let offer = [NO_SECURITY_LAYER, size[1], size[2], size[3]];
        let wrapped = self.gss.wrap(&offer).map_err(SaslError)?;
        self.state = State::Offered { peer };
        Ok(Some(wrapped))
    }

    /// The `sasl` id, once complete.
    pub fn authorization_id(&self) -> Option<&str> {
        match &self.state {
            State::Complete { authz } => Some(authz),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acceptor that takes "t1" then "t2" (answering "mutual" if `mutual`), and wraps by
    /// prefixing "W".
    struct Fake {
        round: u8,
        mutual: bool,
    }

    impl Acceptor for Fake {
        fn accept(&mut self, token: &[u8]) -> Result<(Vec<u8>, Option<String>), String> {
            self.round += 1;
            match (self.round, token) {
                (1, b"t1") => Ok((b"more".to_vec(), None)),
                (2, b"t2") => Ok((
                    if self.mutual {
                        b"mutual".to_vec()
                    } else {
                        vec![]
                    },
                    Some("alice/host.example@EXAMPLE.COM".into()),
                )),
                _ => Err("Decrypt integrity check failed".into()),
            }
        }
        fn wrap(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
            Ok([b"W", msg].concat())
        }
        fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, String> {
            token
                .strip_prefix(b"W")
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "bad wrap".to_string())
        }
    }

    fn rules() -> NameRules {
        NameRules {
            default_realm: Some("EXAMPLE.COM".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_login_with_and_without_mutual_authentication() {
        for mutual in [true, false] {
            let mut x = Exchange::new(Fake { round: 0, mutual }, rules());
            assert_eq!(x.step(b"t1").unwrap(), Some(b"more".to_vec()));
            let mut out = x.step(b"t2").unwrap().unwrap();
            if mutual {
                assert_eq!(out, b"mutual");
                out = x.step(b"").unwrap().unwrap();
            }
            assert_eq!(out, b"W\x01\x01\x00\x00");
            assert_eq!(x.authorization_id(), None);
            assert_eq!(x.step(b"W\x01\x00\x10\x00alice").unwrap(), None);
            assert_eq!(x.authorization_id(), Some("alice/host.example@EXAMPLE.COM"));
            assert!(x.step(b"").is_err());
        }
    }

    #[test]
    fn bad_tokens_end_the_login() {
        let mut x = Exchange::new(
            Fake {
                round: 0,
                mutual: false,
            },
            rules(),
        );
        assert!(x.step(b"garbage").is_err());
        assert!(x.step(b"t1").is_err(), "a failed login stays failed");
        // A non-empty answer to the mutual token, a short or unsigned choice, a layer not
        // offered.
        let mut x = Exchange::new(
            Fake {
                round: 0,
                mutual: true,
            },
            rules(),
        );
        x.step(b"t1").unwrap();
        x.step(b"t2").unwrap();
        assert!(x.step(b"x").is_err());
        for choice in [
            &b"W\x01\x00"[..],
            b"\x01\x00\x10\x00",
            b"W\x04\x00\x10\x00",
            b"W\x01\x00\x00\x00\xff",
        ] {
            let mut x = Exchange::new(
                Fake {
                    round: 0,
                    mutual: false,
                },
                rules(),
            );
            x.step(b"t1").unwrap();
            x.step(b"t2").unwrap();
            assert!(x.step(choice).is_err(), "{choice:?}");
            assert_eq!(x.authorization_id(), None);
        }
    }

    /// Hadoop's TestKerberosName cases, which ZooKeeper's KerberosName copies.
    #[test]
    fn auth_to_local_rules_as_hadoop_applies_them() {
        let rules = AuthToLocal::parse(
            "RULE:[1:$1@$0](.*@YAHOO\\.COM)s/@.*//\n\
             RULE:[2:$1](johndoe)s/^.*$/guest/\n\
             RULE:[2:$1;$2](^.*;admin$)s/;admin$//\n\
             RULE:[2:$2](root)\n\
             DEFAULT",
        )
        .unwrap();
        let short = |p: &str| {
            let (name, realm) = p.split_once('@').unwrap();
            let mut params = vec![realm];
            params.extend(name.split('/'));
            rules.short_name(&params, "APACHE.ORG")
        };
        for (principal, want) in [
            ("omalley@APACHE.ORG", "omalley"),
            ("hdfs/10.0.0.1@APACHE.ORG", "hdfs"),
            ("oom@YAHOO.COM", "oom"),
            ("johndoe/zoo@FOO.COM", "guest"),
            ("joe/admin@FOO.COM", "joe"),
            ("joe/root@FOO.COM", "root"),
        ] {
            assert_eq!(short(principal), Ok(Some(want.to_string())), "{principal}");
        }
        for none in ["foo@ACME.COM", "root/joe@FOO.COM"] {
            assert_eq!(short(none), Ok(None), "{none}");
        }
        // A rule whose result is not a simple name fails; so does a bad parameter.
        let bad = AuthToLocal::parse("RULE:[1:$1@$0]").unwrap();
        assert!(bad.short_name(&["R", "a"], "R").is_err());
        let bad = AuthToLocal::parse("RULE:[1:$1$]").unwrap();
        assert!(bad.short_name(&["R", "a"], "R").is_err());
        // Java's replacement syntax: $1 a group, \$ a dollar.
        let r = AuthToLocal::parse("RULE:[1:$1](.*)s/(a)(b)/$2\\$$1/g").unwrap();
        assert_eq!(r.short_name(&["R", "abab"], ""), Ok(Some("b$ab$a".into())));
        for bad in [
            "RULE:[1:$1](x",
            "RULE:[:$1]",
            "DEFAULTX",
            r"RULE:[1:$1](a\1)",
        ] {
            assert!(AuthToLocal::parse(bad).is_err(), "{bad}");
        }
        // In ids: the short name, then the host and realm unless removed.
        let names = NameRules {
            auth_to_local: rules.clone(),
            default_realm: Some("APACHE.ORG".into()),
            ..Default::default()
        };
        assert_eq!(names.id_of("johndoe/zoo@FOO.COM"), "guest/zoo@FOO.COM");
        assert_eq!(names.id_of("foo@ACME.COM"), "foo@ACME.COM");
        let names = NameRules {
            remove_host: true,
            remove_realm: true,
            ..names
        };
        assert_eq!(names.id_of("johndoe/zoo@FOO.COM"), "guest");
        assert_eq!(names.id_of("oom@YAHOO.COM"), "oom");
    }

    #[test]
    fn names_as_zookeeper_gives_them() {
        let r = rules();
        assert_eq!(r.id_of("alice@EXAMPLE.COM"), "alice@EXAMPLE.COM");
        assert_eq!(
            r.id_of("zk/h.example@EXAMPLE.COM"),
            "zk/h.example@EXAMPLE.COM"
        );
        assert_eq!(r.id_of("bob@OTHER.ORG"), "bob@OTHER.ORG");
        let r = NameRules {
            remove_host: true,
            ..rules()
        };
        assert_eq!(r.id_of("zk/h.example@EXAMPLE.COM"), "zk@EXAMPLE.COM");
        let r = NameRules {
            remove_host: true,
            remove_realm: true,
            ..rules()
        };
        assert_eq!(r.id_of("zk/h.example@EXAMPLE.COM"), "zk");
        assert_eq!(r.id_of("alice@EXAMPLE.COM"), "alice");
        // Another realm: no rule applies; the whole principal.
        assert_eq!(r.id_of("zk/h@OTHER.ORG"), "zk/h@OTHER.ORG");
    }
}
