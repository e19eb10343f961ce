//! Access control: permission checks (`checkACL`), ACL validation and expansion (`fixupACL`)
//! and `addauth`, each asking the scheme's provider (`auth::provider`: world, auth, ip, digest,
//! x509, sasl, super); the `ip` and `digest` rules themselves live here.
//!
//! A session's auth ids are the `ip:<address>` id every connection gets plus one id per
//! successful `addauth`. Shards check reads with them; writes carry them to the write core, which
//! checks again against authoritative state.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::auth::provider::{registry, Authenticating};
use crate::proto::codes::{perms, Code};
use crate::proto::records::{Acl, Id};

/// `digest` id for `user:password`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// True if `ids` grant `perm` on a node with `acl` (ZooKeeper's `checkACL`).
pub fn allowed(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
        // The entry nearly every node has, without a registry lookup.
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        let Some(p) = registry().get(&a.id.scheme) else {
            return false;
        };
        p.grants_everyone(&a.id.id)
            || ids
                .iter()
                .filter(|i| i.scheme == a.id.scheme)
                .any(|i| p.matches(&i.id, &a.id.id))
    })
}

/// True if anyone at all may READ a node with `acl`: an empty list (ZooKeeper's `checkACL`
/// lets everything through) or a `world:anyone` entry with READ. Watch delivery uses it to skip
/// the per-connection check for the nodes nearly every tree is made of.
pub fn world_readable(acl: &[Acl]) -> bool {
    acl.is_empty()
        || acl
            .iter()
            .any(|a| a.perms & perms::READ != 0 && a.id.scheme == "world" && a.id.id == "anyone")
}

/// Java's `Integer.parseInt` for the ASCII forms clients send: optional sign, decimal digits,
/// leading zeros allowed ("01" is 1), nothing else.
fn java_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An `ip` ACL expression `a.b.c.d[/bits]` as ZooKeeper's `IPAuthenticationProvider` reads it:
/// IPv4 only (it has no IPv6 parser, so `ip:::1` is an invalid ACL), each field by
/// `Integer.parseInt`, bits 0..=32. Returns the address and the prefix length.
fn parse_ip_expr(expr: &str) -> Option<(u32, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let addr = parse_v4(addr)?;
    let bits = match bits {
        Some(b) => u32::try_from(java_int(b)?).ok().filter(|b| *b <= 32)?,
        None => 32,
    };
    Some((addr, bits))
}

/// Whether an `ip` ACL id parses (IPAuthenticationProvider.isValid).
pub(crate) fn ip_expr_is_valid(expr: &str) -> bool {
    parse_ip_expr(expr).is_some()
}

/// `v4addr2Bytes`: exactly four dot-separated fields, each 0..=255.
fn parse_v4(addr: &str) -> Option<u32> {
    let mut fields = addr.split('.');
    let mut v = 0u32;
    for _ in 0..4 {
        let f = u8::try_from(java_int(fields.next()?)?).ok()?;
        v = v << 8 | u32::from(f);
    }
    fields.next().is_none().then_some(v)
}

/// A client's `ip` id (its address) against an ACL's expression. An IPv6 client matches no
/// `ip` ACL, as in ZooKeeper.
pub(crate) fn ip_matches(client: &str, expr: &str) -> bool {
    let (Some((net, bits)), Some(addr)) = (parse_ip_expr(expr), parse_v4(client)) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    net & mask == addr & mask
}

/// A `digest` id is valid when Java's `id.split(":")` has exactly two parts; that split drops
/// trailing empty parts, so `u:` is invalid and `u:h:` is valid.
pub(crate) fn digest_id_is_valid(id: &str) -> bool {
    id.split(':').rev().skip_while(|p| p.is_empty()).count() == 2
}

/// Validates an ACL for create/setACL and expands the `auth` scheme into the session's
/// authenticated ids (ZooKeeper's `fixupACL`). Duplicates are removed.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, Code> {
    if acl.is_empty() {
        return Err(Code::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        // ZooKeeper's fixupACL: `auth` stands for the session's authenticated ids; any other
        // scheme must be one the server has, with an id it accepts.
        if a.id.scheme == "auth" {
            let mut any = false;
            for id in ids.iter().filter(|i| {
                registry()
                    .get(&i.scheme)
                    .is_some_and(|p| p.is_authenticated())
            }) {
                any = true;
                push(Acl {
                    perms: a.perms,
                    id: id.clone(),
                });
            }
            if !any {
                return Err(Code::InvalidAcl);
            }
            continue;
        }
        match registry().get(&a.id.scheme) {
            Some(p) if p.is_valid(&a.id.id) => push(a.clone()),
            _ => return Err(Code::InvalidAcl),
        }
    }
    Ok(out)
}

/// What an `addauth` yields: the ids to add to the session, or `AuthFailed` (a scheme the
/// server does not have, or whose provider refuses).
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    peer: IpAddr,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, Code> {
    let ctx = Authenticating { peer, super_digest };
    match registry().get(scheme) {
        Some(p) => p.handle_authentication(&ctx, auth),
        None => Err(Code::AuthFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // `DigestAuthenticationProvider.generateDigest("super:test")` as documented by ZooKeeper.
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn permission_checks() {
        let ip = vec![Id::new("ip", "127.0.0.1")];
        let a = vec![acl(perms::READ, "ip", "127.0.0.0/8")];
        assert!(allowed(&a, perms::READ, &ip));
        assert!(!allowed(&a, perms::WRITE, &ip));
        assert!(!allowed(&a, perms::READ, &[Id::new("ip", "10.0.0.1")]));
        let d = vec![acl(perms::ALL, "digest", &digest_id("u:p"))];
        assert!(!allowed(&d, perms::READ, &ip));
        assert!(allowed(
            &d,
            perms::READ,
            &[Id::new("digest", &digest_id("u:p"))]
        ));
        assert!(allowed(&d, perms::ADMIN, &[Id::new("super", "")]));
        assert!(allowed(&[], perms::ADMIN, &ip));
    }

    #[test]
    fn world_readable_matches_allowed_for_anyone() {
        let nobody: Vec<Id> = Vec::new();
        for a in [
            vec![],
            Acl::open_unsafe(),
            vec![acl(perms::READ, "world", "anyone")],
            vec![acl(perms::WRITE, "world", "anyone")],
            vec![acl(perms::ALL, "world", "someone")],
            vec![acl(perms::ALL, "digest", &digest_id("u:p"))],
            vec![
                acl(perms::ALL, "digest", &digest_id("u:p")),
                acl(perms::READ, "world", "anyone"),
            ],
        ] {
            assert_eq!(
                world_readable(&a),
                allowed(&a, perms::READ, &nobody),
                "{a:?}"
            );
        }
    }

    #[test]
    fn fixup_expands_auth_and_rejects_invalid() {
        let ids = vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")];
        assert_eq!(
            fixup(&[acl(perms::ALL, "auth", "")], &ids).unwrap(),
            vec![acl(perms::ALL, "digest", "u:h")]
        );
        assert_eq!(
            fixup(&[acl(perms::ALL, "auth", "")], &ids[..1]),
            Err(Code::InvalidAcl)
        );
        assert_eq!(fixup(&[], &ids), Err(Code::InvalidAcl));
        assert_eq!(
            fixup(&[acl(1, "world", "someone")], &ids),
            Err(Code::InvalidAcl)
        );
        assert_eq!(fixup(&[acl(1, "nope", "x")], &ids), Err(Code::InvalidAcl));
        assert_eq!(
            fixup(&[acl(1, "ip", "300.1.1.1")], &ids),
            Err(Code::InvalidAcl)
        );
    }

    #[test]
    fn ids_are_validated_as_zookeeper_providers_do() {
        let valid = |scheme: &str, id: &str| fixup(&[acl(1, scheme, id)], &[]).is_ok();
        for id in [
            "10.0.0.0/8",
            "01.2.3.4",
            "+1.2.3.4",
            "1.2.3.4/+8",
            "1.2.3.4/0",
        ] {
            assert!(valid("ip", id), "ip:{id}");
        }
        for id in [
            "::1",
            "0:0:0:0:0:0:0:1",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.256",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "1.2.3.4/8/8",
            " 1.2.3.4",
        ] {
            assert!(!valid("ip", id), "ip:{id}");
        }
        for id in ["u:h", ":h", "u:h:", "u:h::"] {
            assert!(valid("digest", id), "digest:{id}");
        }
        for id in ["u", "u:", "u::", ":", "", "u:h:x"] {
            assert!(!valid("digest", id), "digest:{id}");
        }
        let ip = |a: &str| vec![Id::new("ip", a)];
        let a = vec![acl(perms::READ, "ip", "010.0.0.0/8")];
        assert!(allowed(&a, perms::READ, &ip("10.1.2.3")));
        assert!(!allowed(&a, perms::READ, &ip("0:0:0:0:0:0:0:1")));
    }
}
