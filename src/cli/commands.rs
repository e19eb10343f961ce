//! zkCli's commands, each as its `*Command.java` behaves: the flags it takes, the requests it
//! sends, what it prints on stdout and stderr, and the error it ends with.

use bytes::{BufMut, BytesMut};

use super::client::{print_event, proto_err, read_acl, read_stat, Client, Error};
use super::format::{self, StatsTrack, BYTES, BYTES_HARD, COUNT, COUNT_HARD};
use super::parse::{self, flag, parse_opts, valued, Opt, Parsed};
use crate::proto::codes::{op, Code};
use crate::proto::jute::{Reader, Writer as _};
use crate::proto::records::{Acl, Stat};

/// How a command failed: the message zkCli prints on stderr and the exit code it sets.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }
}

type CmdResult = Result<(), CliError>;

/// A server error on `path` as `CliWrapperException` words it.
fn wrap(e: Error, path: Option<&str>) -> CliError {
    match e {
        Error::Keeper(c) => CliError::new(format::wrapper_message(c, path)),
        Error::Protocol(m) => CliError::new(m),
    }
}

/// `MalformedPathException` from the client's path check.
fn check_path(path: &str) -> CmdResult {
    parse::validate_path(path).map_err(CliError::new)
}

/// A Java `Integer.parseInt` / `Long.parseLong` that zkCli does not catch: we report it
/// instead of dying.
fn parse_int<T: std::str::FromStr>(s: &str) -> Result<T, CliError> {
    s.parse().map_err(|_| {
        CliError::new(format!(
            "java.lang.NumberFormatException: For input string: \"{s}\""
        ))
    })
}

fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn err(s: &str) {
    eprintln!("{s}");
}

/// Every zkCli command with its usage (`getOptionStr`), sorted as zkCli's `usage()` lists them.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("listquota", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

pub fn usage_of(cmd: &str) -> String {
    let opts = COMMANDS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map_or("", |(_, o)| *o);
    format!("{cmd} {opts}")
}

/// zkCli's `usage()`, on stderr.
pub fn print_usage() {
    let mut s = String::from(
        "ZooKeeper -server host:port -client-configuration properties-file cmd args\n",
    );
    for (c, o) in COMMANDS {
        s.push_str(&format!("\t{c} {o}\n"));
    }
    eprint!("{s}");
}

fn opts(words: &[String], spec: &[Opt]) -> Result<Parsed, CliError> {
    parse_opts(words, spec).map_err(CliError::new)
}

/// Runs a server command (every one but the shell's own: history, redo, connect, ...).
pub fn run(c: &mut Client, words: &[String]) -> CmdResult {
    let cmd = words[0].as_str();
    match cmd {
        "ls" => ls(c, words),
        "create" => create(c, words),
        "get" => get(c, words),
        "set" => set(c, words),
        "stat" => stat(c, words),
        "delete" => delete(c, words),
        "deleteall" | "rmr" => deleteall(c, words),
        "setAcl" => set_acl(c, words),
        "getAcl" => get_acl(c, words),
        "addauth" => addauth(c, words),
        "sync" => sync(c, words),
        "addWatch" => add_watch(c, words),
        "removewatches" => remove_watches(c, words),
        "whoami" => whoami(c),
        "config" => config(c, words),
        "setquota" => setquota(c, words),
        "listquota" => listquota(c, words),
        "delquota" => delquota(c, words),
        "getEphemerals" => get_ephemerals(c, words),
        "getAllChildrenNumber" => all_children(c, words),
        "close" => {
            c.close();
            Ok(())
        }
        "version" => {
            out(&format!("ZooKeeper CLI version: corral {}\n", env!("CARGO_PKG_VERSION")));
            Ok(())
        }
        "reconfig" => Err(CliError::new(
            "reconfig is not supported by corral cli (corral does not support dynamic reconfiguration)",
        )),
        _ => Err(CliError {
            message: format!("Command not found: Command not found {cmd}"),
            exit_code: 127,
        }),
    }
}

// ---- requests -------------------------------------------------------------------------------

fn req_path_watch(path: &str, watch: bool) -> impl Fn(&mut BytesMut) + '_ {
    move |b| {
        b.put_jstring(path);
        b.put_jbool(watch);
    }
}

pub fn get_children(c: &mut Client, path: &str, watch: bool) -> Result<(Vec<String>, Stat), Error> {
    let sp = c.server_path(path);
    let mut r = c.call(op::GET_CHILDREN2, req_path_watch(&sp, watch))?;
    let kids = r.strings_lossy().map_err(proto_err)?;
    let st = read_stat(&mut r)?;
    if watch {
        c.watches().child.insert(path.to_string());
    }
    Ok((kids, st))
}

fn get_data(c: &mut Client, path: &str, watch: bool) -> Result<(Option<Vec<u8>>, Stat), Error> {
    let sp = c.server_path(path);
    let mut r = c.call(op::GET_DATA, req_path_watch(&sp, watch))?;
    let data = r.buffer_opt().map_err(proto_err)?.map(|b| b.to_vec());
    let st = read_stat(&mut r)?;
    if watch {
        c.watches().data.insert(path.to_string());
    }
    Ok((data, st))
}

/// `exists`: None when the node is not there (an exist watch is set then).
fn exists(c: &mut Client, path: &str, watch: bool) -> Result<Option<Stat>, Error> {
    let sp = c.server_path(path);
    match c.call(op::EXISTS, req_path_watch(&sp, watch)) {
        Ok(mut r) => {
            let st = read_stat(&mut r)?;
            if watch {
                c.watches().data.insert(path.to_string());
            }
            Ok(Some(st))
        }
        Err(Error::Keeper(Code::NoNode)) => {
            if watch {
                c.watches().exist.insert(path.to_string());
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn create_node(
    c: &mut Client,
    path: &str,
    data: Option<&[u8]>,
    acl: &[Acl],
    flags: i32,
    ttl: Option<i64>,
) -> Result<String, Error> {
    let opcode = match (flags, ttl) {
        (_, Some(_)) => op::CREATE_TTL,
        (4, None) => op::CREATE_CONTAINER,
        _ => op::CREATE,
    };
    let sp = c.server_path(path);
    let mut r = c.call(opcode, |b| {
        b.put_jstring(&sp);
        b.put_jbuffer_opt(data);
        Acl::encode_list(acl, b);
        b.put_i32(flags);
        if let Some(t) = ttl {
            b.put_i64(t);
        }
    })?;
    let created = r.string_lossy().map_err(proto_err)?;
    Ok(c.client_path(&created))
}

fn delete_node(c: &mut Client, path: &str, version: i32) -> Result<(), Error> {
    let sp = c.server_path(path);
    c.call(op::DELETE, |b| {
        b.put_jstring(&sp);
        b.put_i32(version);
    })
    .map(|_| ())
}

fn set_data(c: &mut Client, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
    let sp = c.server_path(path);
    let mut r = c.call(op::SET_DATA, |b| {
        b.put_jstring(&sp);
        b.put_jbuffer(data);
        b.put_i32(version);
    })?;
    read_stat(&mut r)
}

fn set_acl_req(c: &mut Client, path: &str, acl: &[Acl], version: i32) -> Result<Stat, Error> {
    let sp = c.server_path(path);
    let mut r = c.call(op::SET_ACL, |b| {
        b.put_jstring(&sp);
        Acl::encode_list(acl, b);
        b.put_i32(version);
    })?;
    read_stat(&mut r)
}

/// `ZKUtil.visitSubTreeDFS`: the node, then each level's children sorted, depth first.
fn visit_dfs(
    c: &mut Client,
    path: &str,
    watch: bool,
    visit: &mut dyn FnMut(&mut Client, &str),
) -> Result<(), Error> {
    get_data(c, path, watch)?;
    visit(c, path);
    visit_helper(c, path, watch, visit)
}

fn visit_helper(
    c: &mut Client,
    path: &str,
    watch: bool,
    visit: &mut dyn FnMut(&mut Client, &str),
) -> Result<(), Error> {
    let mut kids = match get_children(c, path, watch) {
        Ok((k, _)) => k,
        Err(Error::Keeper(Code::NoNode)) => return Ok(()),
        Err(e) => return Err(e),
    };
    kids.sort();
    let child = |k: &str| {
        if path == "/" {
            format!("/{k}")
        } else {
            format!("{path}/{k}")
        }
    };
    for k in &kids {
        visit(c, &child(k));
    }
    for k in &kids {
        visit_helper(c, &child(k), watch, visit)?;
    }
    Ok(())
}

// ---- commands -------------------------------------------------------------------------------

/// `ls path [watch]`-style old forms: a third word turns into `-w` with a warning.
fn retain_compat(
    words: &[String],
    spec: &[Opt],
    cmd: &str,
    form: &str,
) -> Result<Parsed, CliError> {
    let mut p = opts(words, spec)?;
    if p.args.len() > 2 {
        let mut w = words.to_vec();
        w[2] = "-w".to_string();
        err(&format!(
            "'{cmd} path [watch]' has been deprecated. Please use '{form}' instead."
        ));
        p = opts(&w, spec)?;
    }
    Ok(p)
}

fn ls(c: &mut Client, words: &[String]) -> CmdResult {
    let spec = [flag('?'), flag('s'), flag('w'), flag('R')];
    let p = retain_compat(words, &spec, "ls", "ls [-w] path")?;
    if p.has('?') {
        out("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n");
    }
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("ls")));
    }
    let path = p.args[1].as_str();
    let watch = p.has('w');
    if p.has('R') {
        check_path(path)?;
        return visit_dfs(c, path, watch, &mut |_, p| out(&format!("{p}\n")))
            .map_err(|e| wrap(e, Some(path)));
    }
    check_path(path)?;
    let (mut kids, st) = get_children(c, path, watch).map_err(|e| wrap(e, Some(path)))?;
    kids.sort();
    let mut s = format!("[{}]\n", kids.join(", "));
    if p.has('s') {
        s.push_str(&format::stat(&st));
    }
    out(&s);
    Ok(())
}

fn create(c: &mut Client, words: &[String]) -> CmdResult {
    let spec = [flag('e'), flag('s'), flag('c'), valued('t')];
    let p = opts(words, &spec)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("create")));
    }
    let (e, s, ctr, t) = (p.has('e'), p.has('s'), p.has('c'), p.has('t'));
    if ctr && (e || s) {
        return Err(CliError::new(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ));
    }
    let ttl: i64 = if t {
        p.value('t')
            .unwrap_or("")
            .parse()
            .map_err(|_| CliError::new("-t argument must be a long value"))?
    } else {
        0
    };
    if t && e {
        return Err(CliError::new("TTLs cannot be used with Ephemeral znodes"));
    }
    if t && ctr {
        return Err(CliError::new("TTLs cannot be used with Container znodes"));
    }
    let flags = match (e, s, ctr, t) {
        (true, true, _, _) => 3,
        (true, false, _, _) => 1,
        (false, true, _, true) => 6,
        (false, true, _, false) => 2,
        (false, false, true, _) => 4,
        (false, false, false, true) => 5,
        _ => 0,
    };
    const MAX_TTL: i64 = 0xff_ffff_ffff;
    if t && (ttl <= 0 || ttl > MAX_TTL) {
        return Err(CliError::new(format!(
            "ttl must be positive and cannot be larger than: {MAX_TTL}"
        )));
    }
    let path = p.args[1].as_str();
    let data = p.args.get(2).map(|d| d.as_bytes());
    let acl = match p.args.get(3) {
        Some(a) => {
            let mut errs = Vec::new();
            let acl = parse::parse_acl(a, &mut errs);
            errs.iter().for_each(|e| err(e));
            acl
        }
        None => Acl::open_unsafe(),
    };
    // The client checks the path (with a sequence suffix's room) and the ACL before sending.
    let check = if s {
        format!("{path}1")
    } else {
        path.to_string()
    };
    check_path(&check)?;
    if acl.is_empty() {
        err(&format::keeper_message(Code::InvalidAcl, None));
        return Err(wrap(Error::Keeper(Code::InvalidAcl), None));
    }
    match create_node(c, path, data, &acl, flags, t.then_some(ttl)) {
        Ok(created) => {
            err(&format!("Created {created}"));
            Ok(())
        }
        Err(Error::Keeper(Code::EphemeralOnLocalSession)) => {
            err("Unable to create ephemeral node on a local session");
            Err(wrap(
                Error::Keeper(Code::EphemeralOnLocalSession),
                Some(path),
            ))
        }
        Err(Error::Keeper(Code::InvalidAcl)) => {
            err(&format::keeper_message(Code::InvalidAcl, Some(path)));
            Err(wrap(Error::Keeper(Code::InvalidAcl), Some(path)))
        }
        Err(e) => Err(wrap(e, Some(path))),
    }
}

fn get(c: &mut Client, words: &[String]) -> CmdResult {
    let spec = [flag('s'), flag('w')];
    let p = opts(words, &spec)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("get")));
    }
    let p = retain_compat(words, &spec, "get", "get [-s] [-w] path")?;
    let path = p.args[1].as_str();
    check_path(path)?;
    let (data, st) = get_data(c, path, p.has('w')).map_err(|e| wrap(e, Some(path)))?;
    let data = data.unwrap_or_else(|| b"null".to_vec());
    let mut s = String::from_utf8_lossy(&data).into_owned();
    s.push('\n');
    if p.has('s') {
        s.push_str(&format::stat(&st));
    }
    out(&s);
    Ok(())
}

fn set(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[flag('s'), valued('v')])?;
    if p.args.len() < 3 {
        return Err(CliError::new(usage_of("set")));
    }
    let path = p.args[1].as_str();
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    check_path(path)?;
    let st = set_data(c, path, p.args[2].as_bytes(), version).map_err(|e| wrap(e, Some(path)))?;
    if p.has('s') {
        out(&format::stat(&st));
    }
    Ok(())
}

fn stat(c: &mut Client, words: &[String]) -> CmdResult {
    let spec = [flag('w')];
    let p = opts(words, &spec)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("stat")));
    }
    let p = retain_compat(words, &spec, "stat", "stat [-w] path")?;
    let path = p.args[1].as_str();
    check_path(path)?;
    match exists(c, path, p.has('w')).map_err(|e| wrap(e, Some(path)))? {
        Some(st) => {
            out(&format::stat(&st));
            Ok(())
        }
        None => Err(wrap(Error::Keeper(Code::NoNode), Some(path))),
    }
}

fn delete(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[valued('v')])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("delete")));
    }
    if p.args.len() > 2 {
        err("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.");
    }
    let path = p.args[1].as_str();
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    check_path(path)?;
    delete_node(c, path, version).map_err(|e| wrap(e, Some(path)))
}

fn deleteall(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[valued('b')])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("deleteall")));
    }
    let batch: usize = match p.value('b') {
        Some(v) => match v.parse::<i32>() {
            Ok(n) if n > 0 => n as usize,
            Ok(_) => 1,
            Err(_) => return Err(CliError::new("-b argument must be an int value")),
        },
        None => 1000,
    };
    let path = p.args[1].as_str();
    check_path(path)?;
    // ZKUtil.deleteRecursive: the subtree breadth first, deleted deepest first in multis.
    let mut tree = vec![path.to_string()];
    let mut i = 0;
    while i < tree.len() {
        let node = tree[i].clone();
        let (kids, _) = get_children(c, &node, false).map_err(|e| wrap(e, Some(path)))?;
        for k in kids {
            tree.push(if node == "/" {
                format!("/{k}")
            } else {
                format!("{node}/{k}")
            });
        }
        i += 1;
    }
    let mut ok = true;
    let tree: Vec<String> = tree.iter().map(|p| c.server_path(p)).collect();
    for chunk in tree.rchunks(batch) {
        let res = c.call(op::MULTI, |b| {
            for p in chunk.iter().rev() {
                b.put_i32(op::DELETE);
                b.put_jbool(false);
                b.put_i32(-1);
                b.put_jstring(p);
                b.put_i32(-1);
            }
            b.put_i32(-1);
            b.put_jbool(true);
            b.put_i32(-1);
        });
        match res {
            Ok(r) => {
                if multi_failed(r) {
                    ok = false;
                    break;
                }
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    if !ok {
        err("Failed to delete some node(s) in the subtree!");
    }
    Ok(())
}

/// Whether a multi's results hold an error result.
fn multi_failed(mut r: Reader) -> bool {
    loop {
        let (Ok(typ), Ok(done), Ok(e)) = (r.i32(), r.bool(), r.i32()) else {
            return true;
        };
        if done {
            return false;
        }
        if typ == -1 {
            let code = r.i32().unwrap_or(-1);
            if code != 0 || e != 0 {
                return true;
            }
        }
        // Delete results carry no body.
    }
}

fn set_acl(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[flag('s'), valued('v'), flag('R')])?;
    if p.args.len() < 3 {
        return Err(CliError::new(usage_of("setAcl")));
    }
    let path = p.args[1].as_str();
    let mut errs = Vec::new();
    let acl = parse::parse_acl(&p.args[2], &mut errs);
    errs.iter().for_each(|e| err(e));
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    check_path(path)?;
    if acl.is_empty() {
        return Err(wrap(Error::Keeper(Code::InvalidAcl), None));
    }
    if p.has('R') {
        return visit_dfs(c, path, false, &mut |c, node| {
            if let Err(Error::Keeper(code)) = set_acl_req(c, node, &acl, version) {
                out(&format::keeper_message(code, Some(node)));
            }
        })
        .map_err(|e| wrap(e, Some(path)));
    }
    let st = set_acl_req(c, path, &acl, version).map_err(|e| wrap(e, Some(path)))?;
    if p.has('s') {
        out(&format::stat(&st));
    }
    Ok(())
}

fn get_acl(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[flag('s')])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("getAcl")));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let sp = c.server_path(path);
    let mut r = c
        .call(op::GET_ACL, |b| b.put_jstring(&sp))
        .map_err(|e| wrap(e, Some(path)))?;
    let acl = read_acl(&mut r).map_err(|e| wrap(e, Some(path)))?;
    let st = read_stat(&mut r).map_err(|e| wrap(e, Some(path)))?;
    let mut s = String::new();
    for a in &acl {
        s.push_str(&format!(
            "{}: {}\n",
            format::id_string(&a.id),
            crate::proto::codes::perms::letters(a.perms)
        ));
    }
    if p.has('s') {
        s.push_str(&format::stat(&st));
    }
    out(&s);
    Ok(())
}

fn addauth(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("addauth")));
    }
    let auth = p.args.get(2).map_or(&[][..], |a| a.as_bytes());
    c.add_auth(&p.args[1], auth);
    Ok(())
}

fn sync(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("sync")));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let sp = c.server_path(path);
    match c.call(op::SYNC, |b| b.put_jstring(&sp)) {
        Ok(_) => out("Sync is OK\n"),
        Err(Error::Keeper(code)) => out(&format!("Sync has failed. rc={}\n", code.as_i32())),
        Err(e) => return Err(wrap(e, Some(path))),
    }
    Ok(())
}

fn add_watch(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[valued('m')])?;
    if p.args.len() != 2 {
        return Err(CliError::new(usage_of("addWatch")));
    }
    let mode = match p.value('m').map(str::to_uppercase).as_deref() {
        None | Some("PERSISTENT_RECURSIVE") => 1,
        Some("PERSISTENT") => 0,
        Some(_) => return Err(CliError::new(usage_of("addWatch"))),
    };
    let path = p.args[1].as_str();
    check_path(path)?;
    let sp = c.server_path(path);
    c.call(op::ADD_WATCH, |b| {
        b.put_jstring(&sp);
        b.put_i32(mode);
    })
    .map_err(|e| wrap(e, Some(path)))?;
    let mut w = c.watches();
    if mode == 1 {
        w.recursive.insert(path.to_string());
    } else {
        w.persistent.insert(path.to_string());
    }
    Ok(())
}

fn remove_watches(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[flag('c'), flag('d'), flag('a'), flag('l')])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("removewatches")));
    }
    let path = p.args[1].as_str();
    // WatcherType: Children 1, Data 2, Any 3.
    let typ = if p.has('c') {
        1
    } else if p.has('d') {
        2
    } else {
        3
    };
    check_path(path)?;
    // ZooKeeper's client refuses when it holds no such watch, before asking the server.
    let (data, child, persistent) = {
        let w = c.watches();
        let data = w.data.contains(path) || w.exist.contains(path);
        let child = w.child.contains(path);
        let persistent = w.persistent.contains(path) || w.recursive.contains(path);
        match typ {
            1 => (false, child, false),
            2 => (data, false, false),
            _ => (data, child, persistent),
        }
    };
    if !(data || child || persistent) {
        return Err(wrap(Error::Keeper(Code::NoWatcher), Some(path)));
    }
    if !p.has('l') {
        let sp = c.server_path(path);
        c.call(op::REMOVE_WATCHES, |b| {
            b.put_jstring(&sp);
            b.put_i32(typ);
        })
        .map_err(|e| wrap(e, Some(path)))?;
    }
    {
        let mut w = c.watches();
        if data {
            w.data.remove(path);
            w.exist.remove(path);
        }
        if child {
            w.child.remove(path);
        }
        if persistent {
            w.persistent.remove(path);
            w.recursive.remove(path);
        }
    }
    for (fired, name) in [
        (data, "DataWatchRemoved"),
        (child, "ChildWatchRemoved"),
        (persistent, "PersistentWatchRemoved"),
    ] {
        if fired && c.print_watches() {
            print_event("SyncConnected", name, Some(path));
        }
    }
    Ok(())
}

fn whoami(c: &mut Client) -> CmdResult {
    let mut r = c.call(op::WHO_AM_I, |_| {}).map_err(|e| wrap(e, None))?;
    let n = r.vec_len(8).map_err(|e| wrap(proto_err(e), None))?;
    let mut s = String::from("Auth scheme: User\n");
    for _ in 0..n {
        let scheme = r.string_lossy().map_err(|e| wrap(proto_err(e), None))?;
        let user = r.string_lossy().map_err(|e| wrap(proto_err(e), None))?;
        s.push_str(&format!("{scheme}: {user}\n"));
    }
    out(&s);
    Ok(())
}

fn config(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[flag('s'), flag('w'), flag('c')])?;
    let path = "/zookeeper/config";
    // getConfig reads the config node itself, whatever the chroot.
    let watch = p.has('w');
    let mut r = c
        .call(op::GET_DATA, req_path_watch(path, watch))
        .map_err(|e| wrap(e, Some(path)))?;
    let data = r
        .buffer_opt()
        .map_err(|e| wrap(proto_err(e), Some(path)))?
        .map(|b| b.to_vec());
    let st = read_stat(&mut r).map_err(|e| wrap(e, Some(path)))?;
    if watch {
        // Its event carries the node's own path, which no chroot shortens.
        c.watches().data.insert(path.to_string());
    }
    let data = data.unwrap_or_else(|| b"null".to_vec());
    let text = String::from_utf8_lossy(&data).into_owned();
    let mut s = if p.has('c') {
        client_config(&text)
    } else {
        text
    };
    s.push('\n');
    if p.has('s') {
        s.push_str(&format::stat(&st));
    }
    out(&s);
    Ok(())
}

/// `ConfigUtils.getClientConfigStr`: `version host:port,...` from the dynamic config's
/// `server.N=...;[addr:]port` lines.
fn client_config(text: &str) -> String {
    let mut version = "";
    let mut servers: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "version" {
            version = v;
        }
        if !k.starts_with("server.") {
            continue;
        }
        if let Some((_, client)) = v.split_once(';') {
            let client = if client.contains(':') {
                client.to_string()
            } else {
                format!("0.0.0.0:{client}")
            };
            servers.push((k, client));
        }
    }
    servers.sort();
    let list: Vec<String> = servers.into_iter().map(|(_, c)| c).collect();
    format!("{version} {}", list.join(","))
}

// ---- quotas ---------------------------------------------------------------------------------

const QUOTA_ROOT: &str = "/zookeeper/quota";
const LIMIT_NODE: &str = "zookeeper_limits";
const STAT_NODE: &str = "zookeeper_stats";

fn quota_opts() -> [Opt; 4] {
    [valued('n'), valued('b'), valued('N'), valued('B')]
}

/// commons-cli's OptionGroup: at most one of the group's flags.
fn one_of_group(p: &Parsed) -> Result<(), CliError> {
    let mut seen: Option<char> = None;
    for (f, _) in &p.flags {
        if let Some(first) = seen {
            return Err(CliError::new(format!(
                "org.apache.commons.cli.AlreadySelectedException: The option '{f}' was specified but an option from this group has already been selected: '{first}'"
            )));
        }
        seen = Some(*f);
    }
    Ok(())
}

fn setquota(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &quota_opts())?;
    one_of_group(&p)?;
    if p.flags.is_empty() {
        return Err(CliError::new(
            "org.apache.commons.cli.MissingOptionException: Missing required option: [-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]",
        ));
    }
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("setquota")));
    }
    let path = p.args[1].as_str();
    if path.starts_with(QUOTA_ROOT) {
        err(&format!("cannot set a quota under the path: {QUOTA_ROOT}"));
        return Ok(());
    }
    let mut quota = StatsTrack::default();
    for k in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
        quota.set(k, -1);
    }
    for (f, v) in &p.flags {
        let v = v.as_deref().unwrap_or("");
        let (key, is_count) = match f {
            'n' => (COUNT, true),
            'b' => (BYTES, false),
            'N' => (COUNT_HARD, true),
            _ => (BYTES_HARD, false),
        };
        let parsed = if is_count {
            v.parse::<i32>().map(i64::from)
        } else {
            v.parse::<i64>()
        };
        let Ok(n) = parsed else {
            err("NumberFormatException happens when parsing the option value");
            return Ok(());
        };
        if is_count && n <= 0 {
            err("the num quota must be greater than zero");
            return Ok(());
        }
        if !is_count && n < 0 {
            err("the bytes quota must be greater than or equal to zero");
            return Ok(());
        }
        quota.set(key, n);
    }
    check_path(path)?;
    create_quota(c, path, &quota)
}

fn create_quota(c: &mut Client, path: &str, quota: &StatsTrack) -> CmdResult {
    let w = |e| wrap(e, Some(path));
    if exists(c, path, false).map_err(w)?.is_none() {
        return Err(CliError::new(format!("{path} does not exist.")));
    }
    check_child_quota(c, path)?;
    check_parent_quota(c, path)?;
    let open = Acl::open_unsafe();
    let ensure = |c: &mut Client, node: &str, data: Option<&[u8]>| -> Result<bool, CliError> {
        if exists(c, node, false).map_err(w)?.is_some() {
            return Ok(false);
        }
        match create_node(c, node, data, &open, 0, None) {
            Ok(_) => Ok(true),
            Err(Error::Keeper(Code::NodeExists)) => Ok(false),
            Err(e) => Err(wrap(e, Some(node))),
        }
    };
    ensure(c, "/zookeeper", None)?;
    ensure(c, QUOTA_ROOT, None)?;
    let mut qpath = QUOTA_ROOT.to_string();
    for part in path.split('/').skip(1) {
        qpath.push('/');
        qpath.push_str(part);
        ensure(c, &qpath, None)?;
    }
    let stat_path = format!("{qpath}/{STAT_NODE}");
    let limit_path = format!("{qpath}/{LIMIT_NODE}");
    let read_track = |c: &mut Client, node: &str| -> Result<StatsTrack, CliError> {
        let (d, _) = get_data(c, node, false).map_err(|e| wrap(e, Some(node)))?;
        StatsTrack::parse(&String::from_utf8_lossy(&d.unwrap_or_default())).map_err(CliError::new)
    };
    if exists(c, &limit_path, false).map_err(w)?.is_none() {
        create_node(
            c,
            &limit_path,
            Some(quota.render().as_bytes()),
            &open,
            0,
            None,
        )
        .map_err(|e| wrap(e, Some(&limit_path)))?;
        let mut stats = StatsTrack::default();
        stats.set(COUNT, 0);
        stats.set(BYTES, 0);
        create_node(
            c,
            &stat_path,
            Some(stats.render().as_bytes()),
            &open,
            0,
            None,
        )
        .map_err(|e| wrap(e, Some(&stat_path)))?;
        let limits = read_track(c, &limit_path)?;
        let stats = read_track(c, &stat_path)?;
        warn_if_exceeded(&limits, &stats);
    } else {
        let mut limits = read_track(c, &limit_path)?;
        for k in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
            if quota.get(k) > -1 {
                limits.set(k, quota.get(k));
            }
        }
        let stats = read_track(c, &stat_path)?;
        warn_if_exceeded(&limits, &stats);
        set_data(c, &limit_path, limits.render().as_bytes(), -1)
            .map_err(|e| wrap(e, Some(&limit_path)))?;
    }
    Ok(())
}

fn warn_if_exceeded(q: &StatsTrack, s: &StatsTrack) {
    let below = |limit: i64, used: i64| limit > -1 && limit < used;
    if below(q.get(COUNT), s.get(COUNT)) || below(q.get(COUNT_HARD), s.get(COUNT)) {
        out(&format!(
            "[Warning]: the count quota you create is less than the existing count:{}\n",
            s.get(COUNT)
        ));
    }
    if below(q.get(BYTES), s.get(BYTES)) || below(q.get(BYTES_HARD), s.get(BYTES)) {
        out(&format!(
            "[Warning]: the bytes quota you create is less than the existing bytes:{}\n",
            s.get(BYTES)
        ));
    }
}

/// A quota below `path` forbids one on it.
fn check_child_quota(c: &mut Client, path: &str) -> CmdResult {
    let real = format!("{QUOTA_ROOT}{path}");
    let own = real.clone();
    let mut found: Option<String> = None;
    let res = visit_dfs(c, &real, false, &mut |c, qp| {
        if found.is_some() {
            return;
        }
        let Ok((kids, _)) = get_children(c, qp, false) else {
            return;
        };
        if qp != own && kids.iter().any(|k| k == LIMIT_NODE) {
            found = Some(qp[QUOTA_ROOT.len()..].to_string());
        }
    });
    if let Some(child) = found {
        return Err(CliError::new(format!(
            "{path} has a child {child} which has a quota"
        )));
    }
    match res {
        Ok(()) | Err(Error::Keeper(Code::NoNode)) => Ok(()),
        Err(e) => Err(wrap(e, Some(path))),
    }
}

/// A quota above `path` forbids one on it.
fn check_parent_quota(c: &mut Client, path: &str) -> CmdResult {
    let parts: Vec<&str> = parse::java_split(path, '/');
    let mut qp = QUOTA_ROOT.to_string();
    for part in parts.iter().take(parts.len().saturating_sub(1)).skip(1) {
        qp.push('/');
        qp.push_str(part);
        let kids = match get_children(c, &qp, false) {
            Ok((k, _)) => k,
            Err(Error::Keeper(Code::NoNode)) => return Ok(()),
            Err(e) => return Err(wrap(e, Some(&qp))),
        };
        if kids.is_empty() {
            return Ok(());
        }
        if qp != format!("{QUOTA_ROOT}{path}") && kids.iter().any(|k| k == LIMIT_NODE) {
            return Err(CliError::new(format!(
                "{path} has a parent {} which has a quota",
                &qp[QUOTA_ROOT.len()..]
            )));
        }
    }
    Ok(())
}

fn listquota(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("listquota")));
    }
    let path = p.args[1].as_str();
    let limit_path = format!("{QUOTA_ROOT}{path}/{LIMIT_NODE}");
    err(&format!("absolute path is {limit_path}"));
    check_path(&limit_path)?;
    let stat_path = format!("{QUOTA_ROOT}{path}/{STAT_NODE}");
    let mut lines = Vec::new();
    for (i, node) in [&limit_path, &stat_path].into_iter().enumerate() {
        match get_data(c, node, false) {
            Ok((d, _)) => {
                let t = StatsTrack::parse(&String::from_utf8_lossy(&d.unwrap_or_default()))
                    .map_err(CliError::new)?;
                let what = if i == 0 { "quota" } else { "stat" };
                lines.push(format!("Output {what} for {path} {}\n", t.render()));
            }
            Err(Error::Keeper(Code::NoNode)) => {
                out(&lines.concat());
                err(&format!("quota for {path} does not exist."));
                return Ok(());
            }
            Err(e) => return Err(wrap(e, Some(node))),
        }
    }
    out(&lines.concat());
    Ok(())
}

fn delquota(c: &mut Client, words: &[String]) -> CmdResult {
    let spec = [flag('n'), flag('b'), flag('N'), flag('B')];
    let p = opts(words, &spec)?;
    one_of_group(&p)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("delquota")));
    }
    let path = p.args[1].as_str();
    let parent = format!("{QUOTA_ROOT}{path}");
    let limit_path = format!("{parent}/{LIMIT_NODE}");
    check_path(&limit_path)?;
    let w = |e| wrap(e, Some(path));
    if exists(c, &limit_path, false).map_err(w)?.is_none() {
        out(&format!("Quota does not exist for {path}\n"));
        return Ok(());
    }
    let (d, _) = match get_data(c, &limit_path, false) {
        Ok(x) => x,
        Err(Error::Keeper(Code::NoNode)) => {
            err(&format!("quota for {path} does not exist."));
            return Ok(());
        }
        Err(e) => return Err(w(e)),
    };
    let mut track = StatsTrack::parse(&String::from_utf8_lossy(&d.unwrap_or_default()))
        .map_err(CliError::new)?;
    if p.flags.is_empty() {
        let (kids, _) = get_children(c, &parent, false).map_err(w)?;
        for k in kids {
            delete_node(c, &format!("{parent}/{k}"), -1).map_err(w)?;
        }
        // Trim the emptied quota nodes up to /zookeeper/quota.
        let mut node = parent;
        while node != QUOTA_ROOT && node.len() > QUOTA_ROOT.len() {
            let (kids, _) = get_children(c, &node, false).map_err(w)?;
            if !kids.is_empty() {
                break;
            }
            delete_node(c, &node, -1).map_err(w)?;
            node.truncate(node.rfind('/').unwrap_or(0));
        }
    } else {
        for (f, _) in &p.flags {
            let key = match f {
                'n' => COUNT,
                'b' => BYTES,
                'N' => COUNT_HARD,
                _ => BYTES_HARD,
            };
            track.set(key, -1);
        }
        set_data(c, &limit_path, track.render().as_bytes(), -1).map_err(w)?;
    }
    Ok(())
}

fn get_ephemerals(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[])?;
    let path = p.args.get(1).map_or("/", String::as_str);
    check_path(path)?;
    let sp = c.server_path(path);
    let mut r = c
        .call(op::GET_EPHEMERALS, |b| b.put_jstring(&sp))
        .map_err(|e| wrap(e, Some(path)))?;
    let list = r
        .strings_lossy()
        .map_err(|e| wrap(proto_err(e), Some(path)))?;
    out(&format!("[{}]\n", list.join(", ")));
    Ok(())
}

fn all_children(c: &mut Client, words: &[String]) -> CmdResult {
    let p = opts(words, &[])?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage_of("getAllChildrenNumber")));
    }
    let path = p.args[1].as_str();
    check_path(path)?;
    let sp = c.server_path(path);
    let mut r = c
        .call(op::GET_ALL_CHILDREN_NUMBER, |b| b.put_jstring(&sp))
        .map_err(|e| wrap(e, Some(path)))?;
    let n = r.i32().map_err(|e| wrap(proto_err(e), Some(path)))?;
    out(&format!("{n}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lists_commands_sorted_like_zkcli() {
        let names: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(usage_of("ls"), "ls [-s] [-w] [-R] path");
        assert_eq!(usage_of("close"), "close ");
    }

    #[test]
    fn client_config_string() {
        let text = "server.2=h2:2888:3888:participant;127.0.0.1:2182\n\
                    server.1=h1:2888:3888:participant;2181\nversion=100000000";
        assert_eq!(client_config(text), "100000000 0.0.0.0:2181,127.0.0.1:2182");
        assert_eq!(client_config(""), " ");
    }
}
