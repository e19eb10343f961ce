//! The properties grammar: zoo.cfg text into `key=value` entries, as Java's
//! `java.util.Properties.load` reads it (ZooKeeper's own loader). Pure; what the keys mean
//! is the builder's business.
//!
//! The grammar:
//!
//! ```text
//! file     = { line }                      ; lines end in \n, \r\n or \r
//! line     = ws* ( comment | blank | entry )
//! comment  = ( "#" | "!" ) any*            ; a comment line never continues
//! entry    = key ws* [ ( "=" | ":" ) ] ws* value
//! key      = { char - unescaped ( "=" | ":" | ws ) }
//! value    = rest of the logical line      ; ZooKeeper trims key and value
//! ws       = " " | "\t" | "\f"
//! ```
//!
//! A line ending in an odd number of backslashes continues on the next natural line,
//! whose leading whitespace is dropped. Escapes `\t \n \r \f \uXXXX` are decoded and
//! any other `\c` is `c` (so Windows paths need `\\`). A key given twice: the last wins.
//! Corral reads the file as UTF-8 and falls back to ISO-8859-1 (Java's encoding for
//! `Properties.load`) when it is not valid UTF-8.

/// A `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line on which the logical line starts.
    pub line: usize,
}

/// A syntax error in a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub reason: String,
}

/// Java's whitespace for properties files.
fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Java's `String.trim`: strips every char <= U+0020 at both ends.
pub(super) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn ends_in_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses properties text into entries in file order, keys and values trimmed as
/// ZooKeeper trims them. Duplicates are kept; the caller decides (last wins).
pub fn parse_properties(text: &str) -> Result<Vec<Property>, PropertiesError> {
    // Natural lines end in \n, \r\n or a lone \r.
    let mut numbered: Vec<(usize, &str)> = Vec::new();
    for chunk in text.split('\n') {
        let chunk = chunk.strip_suffix('\r').unwrap_or(chunk);
        for piece in chunk.split('\r') {
            numbered.push((numbered.len() + 1, piece));
        }
    }

    let mut out = Vec::new();
    let mut i = 0;
    while i < numbered.len() {
        let (start_line, raw) = numbered[i];
        i += 1;
        let first = raw.trim_start_matches(is_ws);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_string();
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            let Some(&(_, next)) = numbered.get(i) else {
                break;
            };
            i += 1;
            logical.push_str(next.trim_start_matches(is_ws));
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key, start_line)?;
        let value = unescape(raw_value, start_line)?;
        out.push(Property {
            key: java_trim(&key).to_string(),
            value: java_trim(&value).to_string(),
            line: start_line,
        });
    }
    Ok(out)
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace; then skips
/// whitespace, at most one `=`/`:`, and whitespace again.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    for (idx, c) in line.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            key_end = idx;
            value_start = idx + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_ws(c) {
            key_end = idx;
            value_start = idx + c.len_utf8();
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let mut rest = &line[value_start..];
    loop {
        let trimmed = rest.trim_start_matches(is_ws);
        match trimmed.chars().next() {
            Some(c @ ('=' | ':')) if !has_separator => {
                has_separator = true;
                rest = &trimmed[c.len_utf8()..];
            }
            _ => {
                rest = trimmed;
                break;
            }
        }
    }
    (&line[..key_end], rest)
}

/// Decodes `\t \n \r \f \uXXXX` and `\c` -> `c`.
fn unescape(s: &str, line: usize) -> Result<String, PropertiesError> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    // \u escapes are UTF-16 units; surrogate pairs may be split across two escapes.
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        let decoded = match chars.next() {
            None => '\\',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('f') => '\x0c',
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = (hex.len() == 4)
                    .then(|| u16::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| PropertiesError {
                        line,
                        reason: format!("malformed \\uxxxx encoding: \\u{hex}"),
                    })?;
                units.push(unit);
                continue;
            }
            Some(other) => other,
        };
        let mut buf = [0u16; 2];
        units.extend_from_slice(decoded.encode_utf16(&mut buf));
    }
    Ok(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax() {
        let text = "  # indented comment\n\
                    ! bang comment\n\
                    a=1\n\
                    b = 2 \n\
                    c:3\n\
                    d 4\n\
                    e  :  5\n\
                    f\n\
                    g=x=y\n\
                    h=\\\n    continued\\\n  twice\n\
                    i\\=j=k\n\
                    l=tab\\there\\u0041\\\\\n\
                    # comment \\\n\
                    m=after comment\n\
                    \tn\t=\t6\n";
        let props = parse_properties(text).unwrap();
        let got: Vec<(&str, &str, usize)> = props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "1", 3),
                ("b", "2", 4),
                ("c", "3", 5),
                ("d", "4", 6),
                ("e", "5", 7),
                ("f", "", 8),
                ("g", "x=y", 9),
                ("h", "continuedtwice", 10),
                ("i=j", "k", 13),
                ("l", "tab\there\u{41}\\", 14),
                ("m", "after comment", 16),
                ("n", "6", 17),
            ]
        );
    }

    #[test]
    fn properties_line_endings_and_eof() {
        let props = parse_properties("a=1\r\nb=2\rc=3\\").unwrap();
        let got: Vec<(&str, &str, usize)> = props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(got, vec![("a", "1", 1), ("b", "2", 2), ("c", "3", 3)]);
        // An empty continuation line ends the logical line.
        let props = parse_properties("a=x\\\n\nb=y\n").unwrap();
        assert_eq!(props[0].value, "x");
        assert_eq!(props[1].key, "b");
        // Surrogate pairs through \u escapes.
        let props = parse_properties("s=\\uD83D\\uDE00\n").unwrap();
        assert_eq!(props[0].value, "\u{1F600}");
    }
}
