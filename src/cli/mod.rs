//! `corral cli`: a ZooKeeper shell with zkCli.sh's commands, flags and output
//! (`ZooKeeperMain`). `corral cli [-server host:port,...] [-timeout ms] [-r] [cmd args...]`
//! runs one command and exits with its status, as zkCli does; without a command it reads
//! commands from the terminal (line editing and history through rustyline) or, when stdin is
//! not a terminal, line by line from stdin.
//!
//! `client.rs` is the protocol client (`link.rs` its TCP or TLS connection), `parse.rs` the
//! command-line syntax, `format.rs` the output, `commands.rs` the commands; this file holds the
//! shell: options (TLS from `-client-configuration` as zkCli takes it), the prompt, history,
//! redo, connect, printwatches and quit.

pub mod client;
pub mod commands;
pub mod format;
mod link;
pub mod parse;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use client::Client;

/// zkCli's options (`MyCommandOptions`).
struct Options {
    server: String,
    timeout_ms: i32,
    read_only: bool,
    command: Option<Vec<String>>,
    /// `-client-configuration <file>`: ZooKeeper client properties (TLS).
    client_configuration: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        server: "localhost:2181".to_string(),
        timeout_ms: 30000,
        read_only: false,
        command: None,
        client_configuration: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("Error: no argument found for option {a}"))
        };
        match a.as_str() {
            "-server" => o.server = value()?,
            "-timeout" => {
                let v = value()?;
                o.timeout_ms = v.parse().ok().filter(|t: &i32| *t > 0).ok_or_else(|| {
                    format!("Error: -timeout takes a positive number of ms, not {v}")
                })?;
            }
            "-r" => o.read_only = true,
            // zkCli waits for the connection with this flag; we always do.
            "-waitforconnection" => {}
            "-client-configuration" => o.client_configuration = Some(value()?),
            "-h" | "--help" | "-help" => {
                commands::print_usage();
                return Err(String::new());
            }
            w if !w.starts_with('-') => {
                let mut cmd = vec![w.to_string()];
                cmd.extend(it.cloned());
                o.command = Some(cmd);
                break;
            }
            // zkCli ignores unknown flags before the command.
            _ => {}
        }
    }
    Ok(o)
}

/// ZooKeeper's client settings, from `file` (a properties file, as zkCli's
/// `-client-configuration` and ZKClientConfig take it) and, for keys the file leaves out,
/// `-Dkey=value` flags in `CLIENT_JVMFLAGS` and `JVMFLAGS`, as zkCli.sh passes them to its JVM.
fn client_properties(file: Option<&str>) -> Result<HashMap<String, String>, String> {
    let mut props: HashMap<String, String> = HashMap::new();
    let jvm = format!(
        "{} {}",
        std::env::var("CLIENT_JVMFLAGS").unwrap_or_default(),
        std::env::var("JVMFLAGS").unwrap_or_default()
    );
    for flag in jvm.split_whitespace() {
        if let Some((k, v)) = flag.strip_prefix("-D").and_then(|p| p.split_once('=')) {
            props.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("Error: -client-configuration {path}: {e}"))?;
        let entries = crate::config::parse_properties(&text).map_err(|e| {
            format!(
                "Error: -client-configuration {path}: line {}: {}",
                e.line, e.reason
            )
        })?;
        for p in entries {
            props.insert(p.key, p.value);
        }
    }
    Ok(props)
}

/// TLS and SASL as ZooKeeper's client sets them up:
/// - TLS when `zookeeper.client.secure=true`, with the `zookeeper.ssl.*` stores, protocols and
///   hostname verification (`zookeeper.clientCnxnSocket` is not needed: ZooKeeper's TLS
///   wants Netty's, corral's client has one transport);
/// - SASL when `java.security.auth.login.config` names a JAAS file whose `Client` section
///   (`zookeeper.sasl.clientconfig`) has a DigestLoginModule with `username` and `password`
///   (DIGEST-MD5) or a Krb5LoginModule (GSSAPI to `zookeeper.sasl.client.username`, default
///   `zookeeper`, with `java.security.krb5.conf`), unless `zookeeper.sasl.client=false`. A
///   file or section that is missing is a warning and no SASL, as in ZooKeeper; another login
///   module is an error.
fn client_security(file: Option<&str>) -> Result<client::Security, String> {
    let props = client_properties(file)?;
    let on = |key: &str, default: bool| {
        props
            .get(key)
            .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    };
    let tls = if on("zookeeper.client.secure", false) {
        let settings = crate::tls::TlsSettings::client_from_lookup("zookeeper.ssl.", |k| {
            props.get(k).cloned()
        })
        .map_err(|e| format!("Error: {e}"))?;
        Some(crate::tls::client_config(&settings).map_err(|e| format!("Error: {e}"))?)
    } else {
        None
    };
    let sasl = match props.get("java.security.auth.login.config") {
        Some(path) if on("zookeeper.sasl.client", true) => {
            let section = props
                .get("zookeeper.sasl.clientconfig")
                .map_or("Client", String::as_str);
            sasl_login(path, section, &props)?
        }
        _ => None,
    };
    Ok(client::Security { tls, sasl })
}

/// The login of a JAAS file's `section`; `props` for the Kerberos settings.
fn sasl_login(
    path: &str,
    section: &str,
    props: &HashMap<String, String>,
) -> Result<Option<client::SaslLogin>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Warning: JAAS file {path}: {e}; not authenticating with SASL");
            return Ok(None);
        }
    };
    let jaas =
        crate::auth::jaas::parse(&text).map_err(|e| format!("Error: JAAS file {path}: {e}"))?;
    let Some(modules) = jaas.section(section) else {
        eprintln!(
            "Warning: JAAS file {path} has no '{section}' section; not authenticating with SASL"
        );
        return Ok(None);
    };
    let module = modules
        .iter()
        .find(|m| {
            m.class.ends_with(".DigestLoginModule") || m.class == crate::auth::KRB5_LOGIN_MODULE
        })
        .ok_or_else(|| {
            format!(
                "Error: JAAS section '{section}' of {path}: corral cli logs in with \
                 DigestLoginModule or Krb5LoginModule, not {}",
                modules
                    .first()
                    .map_or("an empty section", |m| m.class.as_str())
            )
        })?;
    let option = |name: &str| {
        module
            .options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if module.class == crate::auth::KRB5_LOGIN_MODULE {
        let yes = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let keytab = yes(option("useKeyTab")).then(|| option("keyTab")).flatten();
        let cache = option("ticketCache");
        crate::auth::gssapi::init_initiator(
            props.get("java.security.krb5.conf").map(Path::new),
            keytab.as_deref().map(Path::new),
            cache.as_deref().map(Path::new),
        )
        .map_err(|e| format!("Error: {e}"))?;
        return Ok(Some(client::SaslLogin::Kerberos {
            service: props
                .get("zookeeper.sasl.client.username")
                .cloned()
                .unwrap_or_else(|| "zookeeper".to_string()),
            server_principal: props.get("zookeeper.server.principal").cloned(),
            principal: option("principal"),
            canonicalize: props
                .get("zookeeper.sasl.client.canonicalize.hostname")
                .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false")),
        }));
    }
    match (option("username"), option("password")) {
        (Some(user), Some(password)) => Ok(Some(client::SaslLogin::Digest { user, password })),
        _ => Err(format!(
            "Error: JAAS section '{section}' of {path}: DigestLoginModule needs username and password"
        )),
    }
}

/// The shell's state (`ZooKeeperMain`).
struct Shell {
    /// Shared with the line editor's completer, which lists znodes while a line is typed.
    client: Rc<RefCell<Client>>,
    host: String,
    timeout_ms: i32,
    read_only: bool,
    print_watches: Arc<AtomicBool>,
    security: client::Security,
    history: HashMap<i32, String>,
    count: i32,
    exit_code: i32,
    quit: bool,
}

impl Shell {
    fn prompt(&self) -> String {
        format!(
            "[zk: {}({}) {}] ",
            self.host,
            self.client.borrow_mut().state().name(),
            self.count
        )
    }

    /// `connectToZK`: a new client for `host` (with the same TLS and SASL); the old one's
    /// session is closed first.
    fn connect(&mut self, host: String) -> Result<(), commands::CliError> {
        if self.client.borrow_mut().is_alive() {
            self.client.borrow_mut().close();
        }
        self.host = host;
        let client = Client::new(
            &self.host,
            self.timeout_ms,
            self.read_only,
            self.print_watches.clone(),
            self.security.clone(),
        )
        .map_err(commands::CliError::new)?;
        *self.client.borrow_mut() = client;
        // zkCli connects in the background; a failure shows on the next command.
        let _ = self.client.borrow_mut().ensure_connected();
        Ok(())
    }

    /// `executeLine`.
    fn execute_line(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        let words = parse::split_line(line);
        self.history.insert(self.count, line.to_string());
        self.process(&words);
        self.count += 1;
    }

    /// `processCmd`: runs a command and prints its error.
    fn process(&mut self, words: &[String]) {
        if matches!(words.first().map(String::as_str), Some("quit" | "exit")) {
            // zkCli exits at once, with the status the previous command left.
            self.client.borrow_mut().close_quietly();
            self.quit = true;
            return;
        }
        match self.process_zk(words) {
            Ok(()) => self.exit_code = 0,
            Err(e) => {
                self.exit_code = e.exit_code;
                eprintln!("{}", e.message);
            }
        }
    }

    /// `processZKCmd`.
    fn process_zk(&mut self, words: &[String]) -> Result<(), commands::CliError> {
        let Some(cmd) = words.first() else {
            commands::print_usage();
            return Err(commands::CliError::new("No command entered"));
        };
        if !commands::COMMANDS.iter().any(|(c, _)| c == cmd) && cmd != "exit" {
            commands::print_usage();
            return Err(commands::CliError {
                message: format!("Command not found: Command not found {cmd}"),
                exit_code: 127,
            });
        }
        match cmd.as_str() {
            "redo" if words.len() >= 2 => {
                let i = java_decode(&words[1]).ok_or_else(|| {
                    commands::CliError::new(format!(
                        "java.lang.NumberFormatException: For input string: \"{}\"",
                        words[1]
                    ))
                })?;
                if self.count <= i || i < 0 {
                    return Err(commands::CliError::new("Command index out of range"));
                }
                let line = self.history.get(&i).cloned().unwrap_or_default();
                let again = parse::split_line(&line);
                if again.first().map(String::as_str) == Some("redo") {
                    return Err(commands::CliError::new("No redoing redos"));
                }
                self.history.insert(self.count, line);
                self.process(&again);
                return Ok(());
            }
            "history" => {
                let mut s = String::new();
                for i in (self.count - 10).max(0)..=self.count {
                    let line = self.history.get(&i).map_or("null", String::as_str);
                    s.push_str(&format!("{i} - {line}\n"));
                }
                print!("{s}");
            }
            "printwatches" => {
                if words.len() == 1 {
                    let on = self.print_watches.load(Ordering::SeqCst);
                    println!("printwatches is {}", if on { "on" } else { "off" });
                } else {
                    self.print_watches.store(words[1] == "on", Ordering::SeqCst);
                }
            }
            "connect" => {
                let host = words.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect(host)?;
            }
            _ => {}
        }
        if !self.client.borrow_mut().is_alive() {
            println!("Not connected");
            return Ok(());
        }
        if matches!(
            cmd.as_str(),
            "history" | "printwatches" | "connect" | "redo"
        ) {
            return Ok(());
        }
        commands::run(&mut self.client.borrow_mut(), words)
    }
}

/// Java's `Integer.decode`: decimal, `0x`/`#` hex, leading-zero octal, with a sign.
fn java_decode(s: &str) -> Option<i32> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(h) = body.strip_prefix('#') {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    i32::try_from(if neg { -v } else { v }).ok()
}

/// `corral cli ...`: returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    let opts = match parse_options(args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => return 0,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let security = match client_security(opts.client_configuration.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    println!("Connecting to {}", opts.server);
    let print_watches = Arc::new(AtomicBool::new(true));
    let client = match Client::new(
        &opts.server,
        opts.timeout_ms,
        opts.read_only,
        print_watches.clone(),
        security.clone(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut shell = Shell {
        client: Rc::new(RefCell::new(client)),
        host: opts.server.clone(),
        timeout_ms: opts.timeout_ms,
        read_only: opts.read_only,
        print_watches,
        security,
        history: HashMap::new(),
        count: 0,
        exit_code: 0,
        quit: false,
    };
    // zkCli connects in the background and its commands wait for the connection; we connect
    // before the first command, so a dead server shows as ConnectionLoss on it, after the
    // timeout.
    if let Some(cmd) = opts.command {
        let _ = shell.client.borrow_mut().ensure_connected();
        shell.process(&cmd);
        shell.client.borrow_mut().close_quietly();
        return shell.exit_code;
    }
    println!("Welcome to ZooKeeper!");
    if std::io::stdin().is_terminal() {
        println!("JLine support is enabled");
        let _ = shell.client.borrow_mut().ensure_connected();
        interactive(&mut shell);
    } else {
        println!("JLine support is disabled");
        let _ = shell.client.borrow_mut().ensure_connected();
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            shell.execute_line(&line);
            if shell.quit {
                break;
            }
        }
    }
    shell.client.borrow_mut().close_quietly();
    shell.exit_code
}

/// Tab completion as zkCli's JLine completer does it: a word starting with `/` completes to
/// the znodes of its parent, a first word to the command names.
struct Completion {
    client: Rc<RefCell<Client>>,
}

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        if let Some(slash) = word.rfind('/').filter(|_| word.starts_with('/')) {
            let (dir, prefix) = (
                if slash == 0 { "/" } else { &word[..slash] },
                &word[slash + 1..],
            );
            // Only over a live connection: a completion must not wait for a reconnect.
            let Ok(mut c) = self.client.try_borrow_mut() else {
                return Ok((start, Vec::new()));
            };
            if c.state() != client::State::Connected {
                return Ok((start, Vec::new()));
            }
            let Ok((mut kids, _)) = commands::get_children(&mut c, dir, false) else {
                return Ok((start, Vec::new()));
            };
            kids.sort();
            let base = if dir == "/" { "" } else { dir };
            let found = kids
                .into_iter()
                .filter(|k| k.starts_with(prefix))
                .map(|k| format!("{base}/{k}"))
                .collect();
            return Ok((start, found));
        }
        if before[..start].trim().is_empty() {
            let found = commands::COMMANDS
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| c.starts_with(word))
                .map(str::to_string)
                .collect();
            return Ok((start, found));
        }
        Ok((start, Vec::new()))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

/// The terminal loop: rustyline gives line editing, an in-memory history (up/down, Ctrl-R) and
/// Tab completion, as JLine does for zkCli.
fn interactive(shell: &mut Shell) {
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let editor =
        rustyline::Editor::<Completion, rustyline::history::DefaultHistory>::with_config(config);
    let mut rl = match editor {
        Ok(mut rl) => {
            rl.set_helper(Some(Completion {
                client: shell.client.clone(),
            }));
            rl
        }
        Err(e) => {
            eprintln!("line editing unavailable ({e}); reading plain lines");
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                shell.execute_line(&line);
                if shell.quit {
                    break;
                }
            }
            return;
        }
    };
    loop {
        match rl.readline(&shell.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                shell.execute_line(&line);
                if shell.quit {
                    return;
                }
            }
            // Ctrl-C drops the line being typed, as JLine does; Ctrl-D ends the shell.
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_decode_like_java() {
        assert_eq!(java_decode("12"), Some(12));
        assert_eq!(java_decode("0x10"), Some(16));
        assert_eq!(java_decode("010"), Some(8));
        assert_eq!(java_decode("-3"), Some(-3));
        assert_eq!(java_decode("abc"), None);
    }

    #[test]
    fn options_and_command() {
        let a: Vec<String> = ["-server", "h:1", "-timeout", "5000", "ls", "-s", "/"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_options(&a).unwrap();
        assert_eq!(o.server, "h:1");
        assert_eq!(o.timeout_ms, 5000);
        assert_eq!(o.command.unwrap(), vec!["ls", "-s", "/"]);
        assert!(parse_options(&["-server".to_string()]).is_err());
    }
}
