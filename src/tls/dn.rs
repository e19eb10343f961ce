//! X.500 names as Java prints and parses them, because ZooKeeper's x509 scheme names a client by
//! `X509Certificate.getSubjectX500Principal().getName()` and checks ACL ids with
//! `new X500Principal(id)`.
//!
//! `subject_dn` follows Java 17's RFC 2253 output: RDNs last to first joined by ',', the AVAs of
//! a multi-valued RDN in their encoded order joined by '+', keywords only for CN C L ST O OU
//! STREET DC UID (everything else as a dotted OID with `#` and the lowercase hex of the whole DER
//! value), string values (Printable, T61, IA5, General, UTF8, BMP) read as UTF-8 whatever their
//! tag (so a BMPString's zero bytes show as `\00`: Java 17 does this), `,=+<>#;"\` escaped with
//! a backslash anywhere, NUL as `\00`, and leading or trailing spaces and CRs escaped. The vectors
//! in the tests come from Java itself (tests/tools/X500Vectors.java).
//!
//! `valid_dn` follows Java's lenient string grammar (X500Name with the DEFAULT format): RDNs
//! split on unescaped ',' or ';' outside quotes, AVAs on '+', keywords from Java's table or OIDs
//! (optionally `OID.`), values quoted, `#hex` (one whole DER value) or a string whose escapes are
//! `\` plus one of `,=\n+<>#;\" ` or two hex digits. Java's quirks in finding separators (a
//! backslash count that looks past the last one, a '+' after any backslash) are kept so that the
//! answers match.

/// Java's X500Principal.getName() (RFC 2253) of the certificate's subject.
pub fn subject_dn(cert_der: &[u8]) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    name_rfc2253(cert.subject().as_raw())
}

/// The RFC 2253 string of a DER-encoded Name.
pub(crate) fn name_rfc2253(name_der: &[u8]) -> Result<String, String> {
    let (name, rest) = tlv(name_der, 0x30)?;
    if !rest.is_empty() {
        return Err("bytes after the name".to_string());
    }
    let mut rdns = Vec::new();
    let mut r = name;
    while !r.is_empty() {
        let (set, next) = tlv(r, 0x31)?;
        r = next;
        let mut avas = Vec::new();
        let mut s = set;
        while !s.is_empty() {
            let (seq, next) = tlv(s, 0x30)?;
            s = next;
            let (oid, value) = tlv(seq, 0x06)?;
            avas.push(ava_rfc2253(oid, value)?);
        }
        if avas.is_empty() {
            return Err("empty RDN".to_string());
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// One tag-length-value with the expected tag: (contents, the bytes after it).
fn tlv(b: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    match der_value(b) {
        Some((t, contents, rest)) if t == tag => Ok((contents, rest)),
        Some((t, _, _)) => Err(format!("expected DER tag {tag:#04x}, found {t:#04x}")),
        None => Err("truncated DER".to_string()),
    }
}

/// (tag, contents, rest) of the first DER value, definite lengths only.
fn der_value(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

fn ava_rfc2253(oid: &[u8], value: &[u8]) -> Result<String, String> {
    let dotted = oid_string(oid)?;
    let keyword = match dotted.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => dotted.as_str(),
    };
    let (tag, contents, rest) = der_value(value).ok_or("truncated attribute value")?;
    if !rest.is_empty() {
        return Err("bytes after an attribute value".to_string());
    }
    // PrintableString, T61String, IA5String, GeneralString, UTF8String, BMPString.
    let stringy = matches!(tag, 0x13 | 0x14 | 0x16 | 0x1b | 0x0c | 0x1e);
    let mut out = format!("{keyword}=");
    if keyword.as_bytes()[0].is_ascii_digit() || !stringy {
        out.push('#');
        for b in value {
            out.push_str(&format!("{b:02x}"));
        }
        return Ok(out);
    }
    let text = String::from_utf8_lossy(contents);
    let mut escaped: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if ",=+<>#;\"\\".contains(c) {
            escaped.push('\\');
            escaped.push(c);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| blank(c)).count();
    let trail = escaped.len() - escaped.iter().rev().take_while(|c| blank(c)).count();
    for (i, c) in escaped.iter().enumerate() {
        if i < lead || i >= trail.max(lead) {
            out.push('\\');
        }
        out.push(*c);
    }
    Ok(out)
}

fn oid_string(oid: &[u8]) -> Result<String, String> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut v: u128 = 0;
    for (i, &b) in oid.iter().enumerate() {
        if v > u128::MAX >> 8 {
            return Err("OID arc too large".to_string());
        }
        v = (v << 7) | (b & 0x7f) as u128;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        } else if i == oid.len() - 1 {
            return Err("truncated OID".to_string());
        }
    }
    if arcs.is_empty() {
        return Err("empty OID".to_string());
    }
    Ok(arcs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join("."))
}

/// Whether Java's `new X500Principal(s)` accepts `s` (ZooKeeper's
/// X509AuthenticationProvider.isValid for `x509:` ACL ids).
pub fn valid_dn(s: &str) -> bool {
    parse_dn(&s.chars().collect::<Vec<_>>()).is_some()
}

/// X500Name(String) with the DEFAULT format: Some(()) when accepted.
fn parse_dn(s: &[char]) -> Option<()> {
    if s.is_empty() {
        return Some(());
    }
    let find = |from: usize| (from..s.len()).find(|&i| s[i] == ',' || s[i] == ';');
    let (mut rdn_start, mut search, mut quotes) = (0, 0, 0);
    while let Some(end) = find(search) {
        quotes += count_quotes(s, search, end);
        if quotes != 1 && !escaped(s, end, search) {
            parse_rdn(&s[rdn_start..end])?;
            rdn_start = end + 1;
            quotes = 0;
        }
        search = end + 1;
    }
    parse_rdn(&s[rdn_start..])
}

/// Unescaped quotes in s[from..to] (a quote at `from` counts whatever precedes it).
fn count_quotes(s: &[char], from: usize, to: usize) -> usize {
    (from..to)
        .filter(|&i| s[i] == '"' && (i == from || s[i - 1] != '\\'))
        .count()
}

/// Whether the separator at `end` is escaped, as Java decides it: one backslash before it, or
/// else an odd number of backslashes anywhere in s[search..end] when two precede it.
fn escaped(s: &[char], end: usize, search: usize) -> bool {
    if end >= 1 && s[end - 1] == '\\' && (end == 1 || s[end - 2] != '\\') {
        return true;
    }
    if end > 1 && s[end - 1] == '\\' && s[end - 2] == '\\' {
        let count = (search..end).filter(|&i| s[i] == '\\').count();
        return count % 2 == 1;
    }
    false
}

fn parse_rdn(s: &[char]) -> Option<()> {
    let (mut ava_start, mut search, mut quotes) = (0, 0, 0);
    while let Some(plus) = (search..s.len()).find(|&i| s[i] == '+') {
        quotes += count_quotes(s, search, plus);
        if plus > 0 && s[plus - 1] != '\\' && quotes != 1 {
            parse_ava(&s[ava_start..plus])?;
            ava_start = plus + 1;
            quotes = 0;
        }
        search = plus + 1;
    }
    parse_ava(&s[ava_start..])
}

/// Java's keywords for the DEFAULT format (AVAKeyword).
const KEYWORDS: &[&str] = &[
    "CN",
    "C",
    "L",
    "S",
    "ST",
    "O",
    "OU",
    "T",
    "IP",
    "STREET",
    "DC",
    "DNQUALIFIER",
    "DNQ",
    "SURNAME",
    "GIVENNAME",
    "INITIALS",
    "GENERATION",
    "EMAIL",
    "EMAILADDRESS",
    "UID",
    "SERIALNUMBER",
];

fn parse_ava(s: &[char]) -> Option<()> {
    if s.is_empty() {
        return None;
    }
    let eq = s.iter().position(|&c| c == '=')?;
    let keyword: String = s[..eq].iter().collect::<String>().to_ascii_uppercase();
    // Java's String.trim: every char up to ' '.
    let keyword = keyword.trim_matches(|c: char| c <= ' ');
    if !KEYWORDS.contains(&keyword) {
        let oid = keyword.strip_prefix("OID.").unwrap_or(keyword);
        valid_oid(oid)?;
    }
    let mut value = s[eq + 1..].iter().copied().peekable();
    while value.next_if(|&c| c == ' ' || c == '\n').is_some() {}
    match value.next() {
        None => Some(()),
        Some('#') => parse_hex(value),
        Some('"') => parse_quoted(value),
        Some(c) => parse_string(c, value),
    }
}

/// ObjectIdentifier.of: two or more decimal arcs, the first 0-2, the second below 40 under 0 and 1.
fn valid_oid(s: &str) -> Option<()> {
    let arcs: Vec<&str> = s.split('.').collect();
    if arcs.len() < 2
        || arcs
            .iter()
            .any(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let first: u32 = arcs[0].parse().ok()?;
    if first > 2 {
        return None;
    }
    if first < 2 {
        let second: u64 = arcs[1].parse().ok()?;
        if second > 39 {
            return None;
        }
    }
    Some(())
}

fn is_terminator(c: Option<char>) -> bool {
    matches!(c, None | Some(',') | Some('+') | Some(';'))
}

fn hex_digit(c: char) -> Option<u8> {
    c.to_digit(16).map(|d| d as u8)
}

fn parse_hex(mut it: impl Iterator<Item = char>) -> Option<()> {
    let mut bytes = Vec::new();
    let mut high: Option<u8> = None;
    loop {
        let c = it.next();
        if is_terminator(c) {
            break;
        }
        let d = hex_digit(c?)?;
        match high.take() {
            Some(h) => bytes.push(h << 4 | d),
            None => high = Some(d),
        }
    }
    if bytes.is_empty() || high.is_some() {
        return None;
    }
    // One whole DER value, nothing after it.
    let (_, _, rest) = der_value(&bytes)?;
    rest.is_empty().then_some(())
}

/// After a backslash: Some(true) for a hex pair (both digits consumed), Some(false) for another
/// char, None for a hex digit without its pair.
fn hex_pair(c: char, it: &mut impl Iterator<Item = char>) -> Option<bool> {
    if hex_digit(c).is_none() {
        return Some(false);
    }
    hex_digit(it.next()?)?;
    Some(true)
}

fn parse_quoted(mut it: impl Iterator<Item = char>) -> Option<()> {
    let mut c = it.next()?;
    while c != '"' {
        if c == '\\' {
            c = it.next()?;
            if hex_pair(c, &mut it)? {
                c = it.next()?;
                continue;
            }
            if !",=\n+<>#;\\\"".contains(c) {
                return None;
            }
        }
        c = it.next()?;
    }
    // Only whitespace after the closing quote.
    it.all(|c| c == ' ' || c == '\n').then_some(())
}

fn parse_string(first: char, mut it: impl Iterator<Item = char>) -> Option<()> {
    let mut c = Some(first);
    loop {
        let ch = c?;
        if ch == '\\' {
            let e = it.next()?;
            if hex_pair(e, &mut it)? {
                c = it.next();
                if is_terminator(c) {
                    return Some(());
                }
                continue;
            }
            if !",=\n+<>#;\\\" ".contains(e) {
                return None;
            }
        } else if ",+<>;\"".contains(ch) {
            // Characters that must be escaped in the DEFAULT format.
            return None;
        }
        c = it.next();
        if is_terminator(c) {
            // Java stops at an unescaped separator left in the AVA and ignores the rest.
            return Some(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by `java tests/tools/X500Vectors.java tests/tools/x500-inputs.txt` on OpenJDK 17.0.15:
    /// each Name's DER (crafted in the input file, or Java's encoding of an accepted string) and
    /// what X500Principal.getName() printed for it.
    const NAMES: &[(&str, &str)] = include!("vectors_names.in");

    /// Same run: whether new X500Principal(string) accepted each string.
    const VALID: &[(&str, bool)] = include!("vectors_valid.in");

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn names_print_as_java_prints_them() {
        assert!(NAMES.len() > 50);
        for (der, want) in NAMES {
            assert_eq!(name_rfc2253(&unhex(der)).as_deref(), Ok(*want), "{der}");
        }
    }

    #[test]
    fn strings_are_accepted_as_java_accepts_them() {
        assert!(VALID.len() > 150);
        for (s, want) in VALID {
            assert_eq!(valid_dn(s), *want, "{s:?}");
        }
    }

    #[test]
    fn subject_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "zk client");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).unwrap(),
            "CN=zk client,O=Acme\\, Inc."
        );
        assert!(subject_dn(b"junk").is_err());
    }
}
