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
//! principal by the DEFAULT Kerberos name rule, then `/host` and `@REALM` unless
//! `kerberos.removeHostFromPrincipal` / `kerberos.removeRealmFromPrincipal`. The client's
//! authorization id is not trusted for it (docs/decisions.md).

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

/// ZooKeeper's naming of a Kerberos principal (its KerberosName with the DEFAULT rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameRules {
    /// krb5.conf's default realm.
    pub default_realm: Option<String>,
    /// `kerberos.removeHostFromPrincipal`.
    pub remove_host: bool,
    /// `kerberos.removeRealmFromPrincipal`.
    pub remove_realm: bool,
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
        // The DEFAULT rule gives the service name for a principal of the default realm (or
        // of none). For another realm no rule applies; ZooKeeper then keeps the client's
        // authorization id, which its clients set to their own principal: the principal.
        let in_default = realm.is_none() || realm == self.default_realm.as_deref();
        if !in_default {
            return principal.to_string();
        }
        let mut id = service.to_string();
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
