//! zkCli's command-line syntax: how a typed line splits into words (`MyCommandOptions`), how a
//! command's flags are read (Apache commons-cli's `DefaultParser`, whose error messages zkCli
//! prints as they are), the client-side path check (`PathUtils.validatePath`) and the ACL
//! syntax (`AclParser`).

use crate::proto::codes::perms;
use crate::proto::records::{Acl, Id};

/// Splits a typed line into words as zkCli does: a word is a run of non-blanks, or a string in
/// double or single quotes (the quotes removed). An unbalanced quote is skipped.
pub fn split_line(line: &str) -> Vec<String> {
    // zkCli's pattern backtracks on a line of blanks only: its last blank is the one word (so
    // such a line is an unknown command, not an empty one).
    if let Some(last) = line.chars().last().filter(|_| line.trim().is_empty()) {
        return vec![last.to_string()];
    }
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let c = chars[i];
        if c == '"' || c == '\'' {
            match chars[i + 1..].iter().position(|&x| x == c) {
                Some(n) => {
                    out.push(chars[i + 1..i + 1 + n].iter().collect());
                    i += n + 2;
                }
                None => i += 1,
            }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(unquote(word));
        }
    }
    out
}

/// zkCli's QUOTED_PATTERN: a word that starts and ends with the same quote loses them.
fn unquote(w: String) -> String {
    let b = w.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        w[1..w.len() - 1].to_string()
    } else {
        w
    }
}

/// One flag a command takes: its letter and whether a value follows.
#[derive(Clone, Copy)]
pub struct Opt {
    pub name: char,
    pub takes_value: bool,
}

pub const fn flag(name: char) -> Opt {
    Opt {
        name,
        takes_value: false,
    }
}

pub const fn valued(name: char) -> Opt {
    Opt {
        name,
        takes_value: true,
    }
}

/// A parsed command: its flags (with values) and the other words, the command name first.
#[derive(Debug, Default)]
pub struct Parsed {
    pub flags: Vec<(char, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, c: char) -> bool {
        self.flags.iter().any(|(f, _)| *f == c)
    }

    pub fn value(&self, c: char) -> Option<&str> {
        self.flags
            .iter()
            .find(|(f, _)| *f == c)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Java's `Double.parseDouble` acceptance, as commons-cli uses it to tell "-1" (a value) from
/// an option.
fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok()
}

fn unrecognized(token: &str) -> String {
    format!("org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}")
}

fn missing_arg(c: char) -> String {
    format!("org.apache.commons.cli.MissingArgumentException: Missing argument for option: {c}")
}

/// Reads `words` (the command name first) against the flags `opts`, as commons-cli's
/// DefaultParser: flags may come anywhere, `-abc` groups flags, `-v5` carries a value, `--`
/// ends the flags, a negative number is a value. The error is the text zkCli prints.
pub fn parse_opts(words: &[String], opts: &[Opt]) -> Result<Parsed, String> {
    let find = |c: char| opts.iter().find(|o| o.name == c).copied();
    let mut p = Parsed::default();
    let mut pending: Option<char> = None;
    let mut rest_are_args = false;
    for w in words {
        if rest_are_args {
            p.args.push(w.clone());
            continue;
        }
        if w == "--" {
            if let Some(c) = pending {
                return Err(missing_arg(c));
            }
            rest_are_args = true;
            continue;
        }
        let looks_like_opt = w.starts_with('-') && w.len() > 1 && !is_number(w);
        if !looks_like_opt {
            match pending.take() {
                Some(c) => p.flags.push((c, Some(w.clone()))),
                None => p.args.push(w.clone()),
            }
            continue;
        }
        if let Some(c) = pending {
            return Err(missing_arg(c));
        }
        if w.starts_with("--") {
            return Err(unrecognized(w));
        }
        let body: Vec<char> = w[1..].chars().collect();
        let Some(first) = find(body[0]) else {
            return Err(unrecognized(w));
        };
        if body.len() == 1 {
            if first.takes_value {
                pending = Some(first.name);
            } else {
                p.flags.push((first.name, None));
            }
            continue;
        }
        if first.takes_value {
            p.flags
                .push((first.name, Some(body[1..].iter().collect::<String>())));
            continue;
        }
        // Grouped flags: each letter a flag; one that takes a value takes the rest.
        for (i, &c) in body.iter().enumerate() {
            let Some(o) = find(c) else {
                return Err(unrecognized(w));
            };
            if o.takes_value {
                let v: String = body[i + 1..].iter().collect();
                if v.is_empty() {
                    pending = Some(c);
                } else {
                    p.flags.push((c, Some(v)));
                }
                break;
            }
            p.flags.push((c, None));
        }
    }
    if let Some(c) = pending {
        return Err(missing_arg(c));
    }
    Ok(p)
}

/// `PathUtils.validatePath`: the client refuses a bad path before sending it. Positions count
/// UTF-16 units, as Java's do.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    let units: Vec<u16> = path.encode_utf16().collect();
    let mut reason = None;
    let mut last = b'/' as u16;
    for i in 1..units.len() {
        let c = units[i];
        let next_is_end_or_slash = i + 1 == units.len() || units[i + 1] == b'/' as u16;
        if c == 0 {
            reason = Some(format!("null character not allowed @{i}"));
        } else if c == b'/' as u16 && last == b'/' as u16 {
            reason = Some(format!("empty node name specified @{i}"));
        } else if c == b'.' as u16 && last == b'.' as u16 {
            if units[i - 2] == b'/' as u16 && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if c == b'.' as u16 {
            if units[i - 1] == b'/' as u16 && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            reason = Some(format!("invalid character @{i}"));
        }
        if reason.is_some() {
            break;
        }
        last = c;
    }
    match reason {
        Some(r) => Err(format!("Invalid path string \"{path}\" caused by {r}")),
        None => Ok(()),
    }
}

/// `AclParser.parse`: `scheme:id:perms[,...]`; malformed entries and unknown permission
/// letters are reported on stderr and skipped, as zkCli does.
pub fn parse_acl(s: &str, err: &mut Vec<String>) -> Vec<Acl> {
    let mut out = Vec::new();
    for a in java_split(s, ',') {
        let (Some(first), Some(last)) = (a.find(':'), a.rfind(':')) else {
            err.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            err.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        }
        let mut p = 0;
        for c in a[last + 1..].chars() {
            match c {
                'r' => p |= perms::READ,
                'w' => p |= perms::WRITE,
                'c' => p |= perms::CREATE,
                'd' => p |= perms::DELETE,
                'a' => p |= perms::ADMIN,
                other => err.push(format!("Unknown perm type: {other}")),
            }
        }
        out.push(Acl {
            perms: p,
            id: Id::new(&a[..first], &a[first + 1..last]),
        });
    }
    out
}

/// Java's `String.split(sep)`: trailing empty strings are dropped.
pub fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut v: Vec<&str> = s.split(sep).collect();
    while v.len() > 1 && v.last() == Some(&"") {
        v.pop();
    }
    if v == [""] && !s.is_empty() {
        v.clear();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn lines_split_like_zkcli() {
        assert_eq!(split_line("  ls   /a "), words(&["ls", "/a"]));
        assert_eq!(
            split_line("create /a \"hello world\" 'x y'"),
            words(&["create", "/a", "hello world", "x y"])
        );
        assert_eq!(split_line("set /a \"abc"), words(&["set", "/a", "abc"]));
        assert_eq!(split_line("   "), words(&[" "]));
        assert!(split_line("").is_empty());
    }

    #[test]
    fn options_like_commons_cli() {
        let opts = [flag('s'), flag('e'), valued('t')];
        let p = parse_opts(&words(&["create", "-es", "/a", "-t", "10"]), &opts).unwrap();
        assert!(p.has('e') && p.has('s'));
        assert_eq!(p.value('t'), Some("10"));
        assert_eq!(p.args, words(&["create", "/a"]));
        let p = parse_opts(&words(&["create", "-t5", "/a", "-1"]), &opts).unwrap();
        assert_eq!(p.value('t'), Some("5"));
        assert_eq!(p.args, words(&["create", "/a", "-1"]));
        assert_eq!(
            parse_opts(&words(&["create", "-x", "/a"]), &opts).unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x"
        );
        assert_eq!(
            parse_opts(&words(&["create", "/a", "-t"]), &opts).unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: t"
        );
    }

    #[test]
    fn paths_checked_like_pathutils() {
        assert!(validate_path("/").is_ok());
        assert!(validate_path("/a/b.c/..d").is_ok());
        assert_eq!(
            validate_path("a").unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/").unwrap_err(),
            "Path must not end with / character"
        );
        assert_eq!(
            validate_path("/a//b").unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            validate_path("/a/../b").unwrap_err(),
            "Invalid path string \"/a/../b\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            validate_path("/a/.").unwrap_err(),
            "Invalid path string \"/a/.\" caused by relative paths not allowed @3"
        );
        assert_eq!(validate_path("").unwrap_err(), "Path length must be > 0");
    }

    #[test]
    fn acls_parse_like_aclparser() {
        let mut err = Vec::new();
        let acl = parse_acl("world:anyone:cdrwa,digest:u:h=:r,bogus", &mut err);
        assert_eq!(acl.len(), 2);
        assert_eq!(acl[0].perms, perms::ALL);
        assert_eq!(acl[1].id, Id::new("digest", "u:h="));
        assert_eq!(acl[1].perms, perms::READ);
        assert_eq!(err, vec!["bogus does not have the form scheme:id:perm"]);
    }
}
