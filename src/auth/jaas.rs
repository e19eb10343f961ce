//! JAAS login configuration files, as the JDK's `ConfigFile` reads them, for the one use
//! ZooKeeper's server makes of them: the `user_<name>="<password>"` options of a section
//! (`Server` unless `sasl.serverconfig` names another), DIGEST-MD5's credentials.
//!
//! The grammar: `Name { ModuleClass Flag key=value ... ; ... };`, flags `required`,
//! `requisite`, `sufficient`, `optional` in any case, `//` and `/* */` comments (and, as Java's
//! StreamTokenizer has it, a lone `/` comments out the rest of its line), values quoted with `"`
//! or `'` (backslash escapes) or bare words. As in Java, a bare value that starts with a digit,
//! `-` or `.` is a number and an error, a section may appear only once, and a missing section is
//! no error (the caller decides). `${property}` expansion is refused: corral has no Java system
//! properties to expand.

use std::collections::BTreeMap;

/// One login module line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub class: String,
    pub flag: String,
    pub options: Vec<(String, String)>,
}

/// A parsed file: sections by name, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JaasFile {
    pub sections: Vec<(String, Vec<Module>)>,
}

impl JaasFile {
    pub fn section(&self, name: &str) -> Option<&[Module]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_slice())
    }

    /// The DIGEST-MD5 users of a section, as ZooKeeper's SaslServerCallbackHandler collects
    /// them: every module's `user_<name>` options (a later one wins).
    pub fn digest_users(&self, section: &str) -> Option<BTreeMap<String, String>> {
        let modules = self.section(section)?;
        let mut users = BTreeMap::new();
        for m in modules {
            for (k, v) in &m.options {
                if let Some(name) = k.strip_prefix("user_") {
                    users.insert(name.to_string(), v.clone());
                }
            }
        }
        Some(users)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Number(String),
    Char(char),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(s) | Tok::Quoted(s) | Tok::Number(s) => s.clone(),
            Tok::Char(c) => c.to_string(),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

struct Lexer<'a> {
    s: &'a [char],
    i: usize,
    line: usize,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '$' | '_' | '*') || (c as u32) >= 160
}

fn is_word_part(c: char) -> bool {
    is_word_start(c) || c.is_ascii_digit() || matches!(c, '.' | '-')
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn next(&mut self) -> Result<Tok, String> {
        loop {
            let Some(c) = self.peek(0) else {
                return Ok(Tok::Eof);
            };
            if (c as u32) <= 32 {
                self.bump();
            } else if c == '/' && self.peek(1) == Some('*') {
                self.i += 2;
                loop {
                    match self.bump() {
                        None => return Ok(Tok::Eof),
                        Some('*') if self.peek(0) == Some('/') => {
                            self.i += 1;
                            break;
                        }
                        _ => {}
                    }
                }
            } else if c == '/' {
                while !matches!(self.peek(0), None | Some('\n')) {
                    self.bump();
                }
            } else {
                break;
            }
        }
        let c = self.bump().expect("peeked");
        if c == '"' || c == '\'' {
            return Ok(Tok::Quoted(self.quoted(c)));
        }
        if c.is_ascii_digit() || c == '.' || (c == '-' && self.number_follows()) {
            let mut s = c.to_string();
            while let Some(d) = self.peek(0).filter(|d| d.is_ascii_digit() || *d == '.') {
                s.push(d);
                self.bump();
            }
            return Ok(Tok::Number(s));
        }
        if is_word_start(c) {
            let mut s = c.to_string();
            while let Some(d) = self.peek(0).filter(|&d| is_word_part(d)) {
                s.push(d);
                self.bump();
            }
            return Ok(Tok::Word(s));
        }
        Ok(Tok::Char(c))
    }

    fn number_follows(&self) -> bool {
        matches!(self.peek(0), Some(d) if d.is_ascii_digit() || d == '.')
    }

    /// A quoted string after its opening `quote`: ends at the same quote or, as in Java's
    /// StreamTokenizer, at the end of the line; backslash escapes as Java's.
    fn quoted(&mut self, quote: char) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek(0) {
            if c == '\n' || c == '\r' {
                break;
            }
            self.bump();
            if c == quote {
                break;
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(e) = self.bump() else { break };
            s.push(match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                '0'..='7' => {
                    let mut n = e.to_digit(8).unwrap_or(0);
                    let max = if e <= '3' { 2 } else { 1 };
                    for _ in 0..max {
                        match self.peek(0).and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                n = n * 8 + d;
                                self.bump();
                            }
                            None => break,
                        }
                    }
                    char::from_u32(n).unwrap_or('?')
                }
                other => other,
            });
        }
        s
    }
}

/// Parses a JAAS configuration file's text.
pub fn parse(text: &str) -> Result<JaasFile, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        lx: Lexer {
            s: &chars,
            i: 0,
            line: 1,
        },
        look: Tok::Eof,
    };
    p.advance()?;
    let mut file = JaasFile::default();
    while p.look != Tok::Eof {
        let (name, modules) = p.entry()?;
        if file.section(&name).is_some() {
            return Err(format!(
                "Configuration Error: Can not specify multiple entries for {name}"
            ));
        }
        file.sections.push((name, modules));
    }
    Ok(file)
}

struct Parser<'a> {
    lx: Lexer<'a>,
    look: Tok,
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<(), String> {
        self.look = self.lx.next()?;
        Ok(())
    }

    fn error(&self, expect: &str) -> String {
        let found = match &self.look {
            Tok::Eof => {
                return format!("Configuration Error: expected [{expect}], read [end of file]")
            }
            t => t.describe(),
        };
        format!(
            "Configuration Error: Line {}: expected [{expect}], found [{found}]",
            self.lx.line
        )
    }

    /// A word or quoted string.
    fn text(&mut self, expect: &str) -> Result<String, String> {
        match &self.look {
            Tok::Word(s) | Tok::Quoted(s) => {
                let s = s.clone();
                self.advance()?;
                Ok(s)
            }
            _ => Err(self.error(expect)),
        }
    }

    fn char(&mut self, c: char) -> Result<(), String> {
        if self.look == Tok::Char(c) {
            self.advance()
        } else {
            Err(self.error(&c.to_string()))
        }
    }

    fn entry(&mut self) -> Result<(String, Vec<Module>), String> {
        let name = self.text("login entry name")?;
        self.char('{')?;
        let mut modules = Vec::new();
        while self.look != Tok::Char('}') {
            let class = self.text("module class name")?;
            let flag = self.text("controlFlag")?;
            if !["required", "requisite", "sufficient", "optional"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&flag))
            {
                return Err(format!("Configuration Error: Invalid control flag, {flag}"));
            }
            let mut options = Vec::new();
            while self.look != Tok::Char(';') {
                let key = self.text("option key")?;
                self.char('=')?;
                let value = self.text("option value")?;
                if value.contains("${") {
                    return Err(format!(
                        "Configuration Error: Line {}: cannot expand `{value}`: corral has no Java system properties",
                        self.lx.line
                    ));
                }
                // Java keeps options in a map: a repeated key keeps its last value.
                options.retain(|(k, _): &(String, String)| *k != key);
                options.push((key, value));
            }
            self.advance()?;
            modules.push(Module {
                class,
                flag,
                options,
            });
        }
        self.char('}')?;
        self.char(';')?;
        Ok((name, modules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_server_section() {
        let text = r#"
            /* the server's users */
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"   // the super user
                user_bob='bob "the" secret'
                user_with_escape="a\"b\\c";
            };
            // a client section beside it
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule REQUIRED
                username="bob" password="x";
                com.example.Other optional debug=true user_eve="no";
            };
        "#;
        let f = parse(text).unwrap();
        let users = f.digest_users("Server").unwrap();
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            vec![
                ("bob".to_string(), "bob \"the\" secret".to_string()),
                ("super".to_string(), "adminsecret".to_string()),
                ("with_escape".to_string(), "a\"b\\c".to_string()),
            ]
        );
        // Every module of a section counts.
        assert_eq!(f.digest_users("Client").unwrap()["eve"], "no");
        assert_eq!(f.section("Client").unwrap().len(), 2);
        assert_eq!(f.digest_users("Missing"), None);
        assert_eq!(
            parse("QuorumServer{a required;};Server{b sufficient user_a=\"1\";};")
                .unwrap()
                .digest_users("Server")
                .unwrap()["a"],
            "1"
        );
        // An empty section and an empty file are fine.
        assert_eq!(
            parse("Server { };").unwrap().digest_users("Server"),
            Some(BTreeMap::new())
        );
        assert_eq!(parse("  // nothing\n/* */").unwrap(), JaasFile::default());
    }

    #[test]
    fn errors_as_java_reports_them() {
        let bad = [
            (
                "Server { m required user_a=\"x\" };",
                "expected [option key], found [}]",
            ),
            ("Server { m required user_a=\"x\"; }", "read [end of file]"),
            (
                "Server { m mandatory; };",
                "Invalid control flag, mandatory",
            ),
            (
                "Server { m required user_a=123; };",
                "expected [option value], found [123]",
            ),
            ("Server { m required user_a; };", "expected [=]"),
            ("Server m required; };", "expected [{], found [m]"),
            ("Server {};\nServer {};", "multiple entries for Server"),
            (
                "Server { m required a=\"${user.home}\"; };",
                "cannot expand",
            ),
            ("# comment\nServer {};", "found [#]"),
        ];
        for (text, want) in bad {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = parse("Server {\n m required\n user_a=\"x\"\n };").unwrap_err();
        assert!(e.contains("Line 4"), "{e}");
    }
}
