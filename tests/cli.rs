//! `corral cli`, the zkCli.sh-compatible shell: the built binary is run against a live server
//! with commands on the command line (one command, then exit with its status) and on stdin
//! (a script, and a session kept open while another client changes the tree, to see watch
//! events printed as zkCli prints them). What it wrote is checked through a second client.
//! tests/interop/cli_diff.sh diffs its whole transcript against zkCli.sh's.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn cli_command(addr: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_corral"));
    c.arg("cli")
        .arg("-server")
        .arg(addr)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Drains a pipe on a thread into a shared string.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// Waits (bounded) for the child to exit; kills it and panics if it does not.
fn wait_bounded(child: &mut Child, d: Duration, what: &str) -> i32 {
    let deadline = Instant::now() + d;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corral cli did not exit within {d:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `corral cli -server addr args...` with `input` on stdin.
fn run(addr: &str, args: &[&str], input: &str) -> Run {
    let mut child = cli_command(addr).args(args).spawn().unwrap();
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
    }
    let code = wait_bounded(&mut child, Duration::from_secs(60), &format!("{args:?}"));
    // The pipes close with the process; let the collectors finish.
    std::thread::sleep(Duration::from_millis(50));
    let stdout = out.lock().unwrap().clone();
    let stderr = err.lock().unwrap().clone();
    Run {
        stdout,
        stderr,
        code,
    }
}

fn one(addr: &str, args: &[&str]) -> Run {
    run(addr, args, "")
}

const STAT_KEYS: [&str; 11] = [
    "cZxid = 0x",
    "ctime = ",
    "mZxid = 0x",
    "mtime = ",
    "pZxid = 0x",
    "cversion = ",
    "dataVersion = ",
    "aclVersion = ",
    "ephemeralOwner = 0x",
    "dataLength = ",
    "numChildren = ",
];

/// The stat block zkCli prints, in its order, starting at the line after `after`.
fn assert_stat_block(out: &str, after: &str, data_len: usize, data_version: i32) {
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == after)
        .unwrap_or_else(|| panic!("no line {after:?} in:\n{out}"));
    let block = &lines[at + 1..at + 12];
    for (line, key) in block.iter().zip(STAT_KEYS) {
        assert!(line.starts_with(key), "{line:?} is not {key:?} in:\n{out}");
    }
    assert!(
        block[1].ends_with(" UTC 2") || block[1].contains(" UTC "),
        "{out}"
    );
    assert_eq!(block[6], format!("dataVersion = {data_version}"));
    assert_eq!(block[9], format!("dataLength = {data_len}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_command_from_the_command_line() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let zk = connect(&addr).await;

    let r = one(&addr, &["create", "/one", "hello world"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "Created /one\n");
    assert!(r.stdout.starts_with(&format!("Connecting to {addr}\n")));
    assert!(
        r.stdout
            .contains("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"),
        "{}",
        r.stdout
    );
    let (data, _) = zk.get_data("/one").await.unwrap();
    assert_eq!(data, b"hello world");

    let r = one(&addr, &["get", "-s", "/one"]);
    assert_eq!(r.code, 0);
    assert_stat_block(&r.stdout, "hello world", 11, 0);

    let r = one(&addr, &["ls", "/"]);
    assert!(r.stdout.ends_with("[one, zookeeper]\n"), "{}", r.stdout);

    // Errors go to stderr with zkCli's words and status 1; an unknown command is 127.
    let r = one(&addr, &["get", "/nope"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Node does not exist: /nope\n")
    );
    let r = one(&addr, &["create", "/one"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Node already exists: /one\n")
    );
    let r = one(&addr, &["set", "-v", "7", "/one", "x"]);
    assert_eq!(r.stderr, "version No is not valid : /one\n");
    let r = one(&addr, &["ls", "-x", "/"]);
    assert_eq!(
        r.stderr,
        "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x\n"
    );
    let r = one(&addr, &["frobnicate"]);
    assert_eq!(r.code, 127);
    assert!(r
        .stderr
        .ends_with("Command not found: Command not found frobnicate\n"));
    assert!(r.stderr.contains("\tls [-s] [-w] [-R] path\n"));

    // ACLs: a read-only node refuses writes with zkCli's message.
    assert_eq!(one(&addr, &["setAcl", "/one", "world:anyone:r"]).code, 0);
    let r = one(&addr, &["getAcl", "/one"]);
    assert!(r.stdout.ends_with("'world,'anyone\n: r\n"), "{}", r.stdout);
    let r = one(&addr, &["set", "/one", "x"]);
    assert_eq!(r.stderr, "Insufficient permission : /one\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_on_stdin() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let zk = connect(&addr).await;
    let script = "\
create /s
create -s /s/n- a
create -s /s/n- b
create -e /s/eph
set /s/n-0000000000 changed
ls -R /s
getAllChildrenNumber /s
getEphemerals /s
history
redo 1
ls /s
get /s/n-0000000000
bogus
ls /s/
quit
";
    let r = run(&addr, &[], script);
    assert_eq!(r.code, 1, "quit keeps the last status (ls /s/ failed)");
    assert!(r
        .stdout
        .contains("Welcome to ZooKeeper!\nJLine support is disabled\n"));
    let expected_out = "\
/s
/s/eph
/s/n-0000000000
/s/n-0000000001
3
[/s/eph]
0 - create /s
1 - create -s /s/n- a
2 - create -s /s/n- b
3 - create -e /s/eph
4 - set /s/n-0000000000 changed
5 - ls -R /s
6 - getAllChildrenNumber /s
7 - getEphemerals /s
8 - history
[eph, n-0000000000, n-0000000001, n-0000000003]
changed
";
    assert!(r.stdout.contains(expected_out), "stdout:\n{}", r.stdout);
    assert!(r.stderr.starts_with(
        "Created /s\nCreated /s/n-0000000000\nCreated /s/n-0000000001\nCreated /s/eph\n\
         Created /s/n-0000000003\n"
    ));
    assert!(r.stderr.ends_with(
        "Command not found: Command not found bogus\nPath must not end with / character\n"
    ));
    // quit closed the session: its ephemeral is gone at once, not after a timeout.
    eventually(
        Duration::from_secs(5),
        "the ephemeral goes with the session",
        || async {
            !zk.list_children("/s")
                .await
                .unwrap()
                .contains(&"eph".to_string())
        },
    )
    .await;
}

/// A shell kept open: lines are sent one by one and its output read as it comes.
struct Live {
    child: Child,
    stdin: std::process::ChildStdin,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Live {
    fn start(addr: &str) -> Live {
        let mut child = cli_command(addr).spawn().unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        Live {
            child,
            stdin,
            out,
            err,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits (bounded) until stdout holds `text` `n` times.
    fn wait_out(&self, text: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.out.lock().unwrap().clone();
            if out.matches(text).count() >= n {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "no {text:?} (x{n}) in stdout:\n{out}\nstderr:\n{}",
                    self.err.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_events_print_as_zkcli_prints_them() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let zk = connect(&addr).await;
    zk.create("/w", b"v0", &anyone()).await.unwrap();

    let mut cli = Live::start(&addr);
    cli.wait_out("type:None path:null", 1);
    // One-shot watches, fired by another client while the shell waits for input.
    cli.send("ls -w /w");
    cli.wait_out("[]\n", 1);
    cli.send("get -w /w");
    cli.wait_out("v0\n", 1);
    zk.create("/w/c", b"", &anyone()).await.unwrap();
    cli.wait_out(
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w\n",
        1,
    );
    zk.set_data("/w", b"v1", None).await.unwrap();
    cli.wait_out(
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/w\n",
        1,
    );
    // A persistent recursive watch stays; removewatches says so with the client's event.
    cli.send("addWatch /w");
    cli.send("printwatches");
    cli.wait_out("printwatches is on\n", 1);
    zk.set_data("/w/c", b"x", None).await.unwrap();
    zk.set_data("/w/c", b"y", None).await.unwrap();
    cli.wait_out("type:NodeDataChanged path:/w/c\n", 2);
    cli.send("removewatches /w -c");
    cli.send("removewatches /w");
    cli.wait_out(
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/w\n",
        1,
    );
    cli.send("removewatches /w");
    // printwatches off silences events; an exists watch on a missing node fires on create.
    cli.send("printwatches off");
    cli.send("stat -w /w/new");
    cli.send("printwatches");
    cli.wait_out("printwatches is off\n", 1);
    zk.create("/w/new", b"", &anyone()).await.unwrap();
    // The event is delivered before the answer to a sync sent after the create.
    cli.send("sync /w");
    cli.wait_out("Sync is OK\n", 1);
    cli.send("printwatches on");
    cli.send("stat -w /w/later");
    cli.send("printwatches");
    cli.wait_out("printwatches is on\n", 2);
    zk.create("/w/later", b"", &anyone()).await.unwrap();
    cli.wait_out("type:NodeCreated path:/w/later\n", 1);
    let out = cli.out.lock().unwrap().clone();
    assert!(!out.contains("path:/w/new\n"), "{out}");
    cli.send("quit");
    let code = wait_bounded(&mut cli.child, Duration::from_secs(20), "quit");
    assert_eq!(
        code, 0,
        "quit keeps the status of the last command, printwatches"
    );
    let err = cli.stderr();
    assert!(
        err.contains(
            "KeeperErrorCode = No such watcher for /w\nKeeperErrorCode = No such watcher for /w\n"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_are_written_as_zkcli_writes_them() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let zk = connect(&addr).await;
    zk.create("/q", b"", &anyone()).await.unwrap();
    zk.create("/q/in", b"", &anyone()).await.unwrap();

    assert_eq!(one(&addr, &["setquota", "-n", "5", "/q"]).code, 0);
    let (limits, _) = zk
        .get_data("/zookeeper/quota/q/zookeeper_limits")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(limits).unwrap(),
        "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    );
    assert!(zk
        .check_stat("/zookeeper/quota/q/zookeeper_stats")
        .await
        .unwrap()
        .is_some());
    assert_eq!(one(&addr, &["setquota", "-B", "100", "/q"]).code, 0);
    let r = one(&addr, &["listquota", "/q"]);
    assert!(
        r.stdout.contains(
            "Output quota for /q count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Output stat for /q count="),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stderr,
        "absolute path is /zookeeper/quota/q/zookeeper_limits\n"
    );
    let r = one(&addr, &["setquota", "-n", "2", "/q/in"]);
    assert_eq!(r.stderr, "/q/in has a parent /q which has a quota\n");
    // delquota -B clears one limit; delquota with no flag removes the quota nodes.
    assert_eq!(one(&addr, &["delquota", "-B", "/q"]).code, 0);
    let (limits, _) = zk
        .get_data("/zookeeper/quota/q/zookeeper_limits")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(limits).unwrap(),
        "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    );
    assert_eq!(one(&addr, &["delquota", "/q"]).code, 0);
    assert!(zk.check_stat("/zookeeper/quota/q").await.unwrap().is_none());
    let r = one(&addr, &["delquota", "/q"]);
    assert!(
        r.stdout.ends_with("Quota does not exist for /q\n"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_and_deleteall() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let script = "\
addauth digest alice:secret
create /d x auth::cdrwa
create /d/a
create /d/a/b
create /d/c
whoami
getAcl /d
deleteall /d -b 2
ls /
";
    let r = run(&addr, &[], script);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The ids come in the server's order (ZooKeeper keeps them in a hash set).
    let ids = r.stdout.split("Auth scheme: User\n").nth(1).unwrap_or("");
    let mut ids: Vec<&str> = ids.lines().take(2).collect();
    ids.sort();
    assert_eq!(ids, ["digest: alice", "ip: 127.0.0.1"], "{}", r.stdout);
    assert!(r.stdout.contains("'digest,'alice:"), "{}", r.stdout);
    assert!(r.stdout.ends_with("[zookeeper]\n"), "{}", r.stdout);
    // Without the credentials another session may not read /d's children.
    let r = run(&addr, &[], "create /e x digest:bob:nohash:cdrwa\nls /e\n");
    assert_eq!(r.stderr, "Created /e\nInsufficient permission : /e\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_and_a_dead_server_end_cleanly() {
    // Nothing listens: the command fails with ConnectionLoss after the timeout, no hang.
    let port = free_port();
    let started = Instant::now();
    let r = one(
        &format!("127.0.0.1:{port}"),
        &["-timeout", "1000", "ls", "/"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "KeeperErrorCode = ConnectionLoss for /\n");
    assert!(started.elapsed() < Duration::from_secs(15));

    let mut c = Command::new(env!("CARGO_BIN_EXE_corral"));
    let out = c.args(["cli", "-server"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: no argument found for option -server\n"
    );

    let s = TestServer::start_default().await;
    let addr = s.addr();
    // A connect string whose first member is down: the client goes on to the next.
    let r = one(
        &format!("127.0.0.1:{port},{addr}"),
        &["-timeout", "5000", "ls", "/"],
    );
    assert_eq!(
        (r.code, r.stdout.ends_with("[zookeeper]\n")),
        (0, true),
        "{}{}",
        r.stdout,
        r.stderr
    );

    let script = "\
ls
create
create /x/
get //
set -v abc /x y
create -t 99999999999999999 /t
redo abc
redo 0
'unbalanced
\"
setAcl / nocolons
get /\u{1}
";
    let r = run(&addr, &[], script);
    assert!(
        r.stderr.contains("ls [-s] [-w] [-R] path\n"),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("create [-s] [-e] [-c] [-t ttl] path [data] [acl]\n"));
    assert!(r.stderr.contains("Path must not end with / character\n"));
    assert!(r
        .stderr
        .contains("java.lang.NumberFormatException: For input string: \"abc\"\n"));
    assert!(r
        .stderr
        .contains("ttl must be positive and cannot be larger than: 1099511627775\n"));
    assert!(r.stderr.contains("No redoing redos\n") || r.stderr.contains("ls [-s]"));
    assert!(r
        .stderr
        .contains("nocolons does not have the form scheme:id:perm\n"));
    assert!(
        r.stderr.contains("caused by invalid character @1\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// On a terminal: zkCli's prompt, line editing (backspace), history (the up arrow recalls the
/// last line) and Tab completion of commands and znodes, through a pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_gets_the_prompt_line_editing_and_history() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let (mut master, slave) = {
        let (mut m, mut sl) = (0, 0);
        // SAFETY: openpty fills the two descriptors, which we then own.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut sl,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors from openpty, owned from here on.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(m)),
                OwnedFd::from_raw_fd(sl),
            )
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["cli", "-server", &addr])
        .env("TERM", "xterm")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let out = collect(master.try_clone().unwrap());
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !out.lock().unwrap().contains(text) {
            if Instant::now() > deadline {
                panic!("no {text:?} on the terminal:\n{}", out.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("JLine support is enabled");
    wait_for(&format!("[zk: {addr}(CONNECTED) 0] "));
    master.write_all(b"create /tty hello-data\r").unwrap();
    wait_for("Created /tty");
    // Backspaces edit the line: "get /txx" becomes "get /tty".
    master.write_all(b"get /txx\x7f\x7fty\r").unwrap();
    // The data on a line of its own (the typed lines' echo has it after a space).
    wait_for("\nhello-data\r\n");
    // Up arrow twice: "create /tty hello-data" again, which now fails.
    master.write_all(b"\x1b[A\x1b[A\r").unwrap();
    wait_for("Node already exists: /tty");
    // Tab completes a command name and a znode path.
    master.write_all(b"getAllCh\t /tt\t\r").unwrap();
    wait_for(&format!("[zk: {addr}(CONNECTED) 4] "));
    master.write_all(b"ls /zoo\t\r").unwrap();
    wait_for("[config, quota]");
    wait_for(&format!("[zk: {addr}(CONNECTED) 5] "));
    master.write_all(b"history\r").unwrap();
    wait_for("3 - getAllChildrenNumber /tty\r\n4 - ls /zookeeper\r\n");
    master.write_all(b"quit\r").unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(20), "quit on a terminal");
    assert_eq!(code, 0, "quit keeps the last command's status (history)");
}

/// The server restarts under an open shell: the drop is printed, the next command reconnects to
/// the same session, and the watches set before the drop are registered again (SetWatches).
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_reconnects_the_session_with_its_watches() {
    let mut s = TestServer::start_default().await;
    let addr = s.addr();
    {
        let zk = connect(&addr).await;
        zk.create("/r", b"", &anyone()).await.unwrap();
        zk.create("/p", b"", &anyone()).await.unwrap();
    }
    let mut cli = Live::start(&addr);
    cli.send("create -e /r/mine");
    cli.send("get -w /r");
    cli.send("addWatch -m PERSISTENT /p");
    cli.send("printwatches");
    cli.wait_out("printwatches is on\n", 1);
    s.restart().await;
    cli.wait_out(
        "\nWATCHER::\n\nWatchedEvent state:Disconnected type:None path:null\n",
        1,
    );
    cli.send("ls /r");
    cli.wait_out("type:None path:null\n", 3);
    // Same session: its ephemeral is still there and still its own.
    cli.wait_out("[mine]\n", 1);
    let zk = connect(&addr).await;
    zk.set_data("/r", b"x", None).await.unwrap();
    cli.wait_out("type:NodeDataChanged path:/r\n", 1);
    zk.set_data("/p", b"x", None).await.unwrap();
    zk.set_data("/p", b"y", None).await.unwrap();
    cli.wait_out("type:NodeDataChanged path:/p\n", 2);
    cli.send("quit");
    wait_bounded(&mut cli.child, Duration::from_secs(20), "quit");
    // quit closed that session: the ephemeral goes with it.
    eventually(Duration::from_secs(10), "ephemeral gone", || async {
        zk.check_stat("/r/mine").await.unwrap().is_none()
    })
    .await;
}

/// A chroot in the connect string (`host:port/app`): paths typed and printed are relative to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_chroot_suffix_roots_every_path() {
    let s = TestServer::start_default().await;
    let addr = s.addr();
    let zk = connect(&addr).await;
    zk.create("/app", b"", &anyone()).await.unwrap();
    let rooted = format!("{addr}/app");
    let script = "\
create /x one
create -s /x/s-
ls -R /
get -w /x
getAllChildrenNumber /
deleteall /x
ls /
";
    let mut cli = Live::start(&rooted);
    for line in script.lines().take(4) {
        cli.send(line);
    }
    cli.wait_out("one\n", 1);
    zk.set_data("/app/x", b"two", None).await.unwrap();
    cli.wait_out("type:NodeDataChanged path:/x\n", 1);
    for line in script.lines().skip(4) {
        cli.send(line);
    }
    cli.send("quit");
    wait_bounded(&mut cli.child, Duration::from_secs(20), "quit");
    let out = cli.out.lock().unwrap().clone();
    assert!(out.contains("/\n/x\n/x/s-0000000000\none\n"), "{out}");
    assert!(out.ends_with("2\n[]\n"), "{out}");
    assert_eq!(cli.stderr(), "Created /x\nCreated /x/s-0000000000\n");
    assert!(zk.check_stat("/app/x").await.unwrap().is_none());
    assert!(zk.check_stat("/app").await.unwrap().is_some());

    let r = one(&format!("{addr}/bad/"), &["ls", "/"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Path must not end with / character\n")
    );
}
