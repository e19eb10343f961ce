//! The `corral` binary: parse zoo.cfg and flags, start the server; or run one of the file tools
//! (`dump-log`, `dump-snapshot`, `import-zookeeper`, `export-zookeeper`), which work on data
//! directories without a server; or the `cli` shell, a ZooKeeper client (`corral::cli`).

use std::io::Write as _;

use corral::config::{Config, ConfigError};

/// mimalloc rather than glibc's malloc: a large tree is millions of small allocations (keys,
/// boxed nodes, child names), where glibc's per-chunk header and 16-byte rounding cost ~7% of
/// RSS and its free lists half the restart time (1M znodes: 716 -> 665 MiB, restart 2.8 ->
/// 1.4 s, `bash loadgen/restart.sh`); pipelined setData also gained ~8%.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3; the `mimalloc` crate
/// does not name it).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// Its default in ms, in mimalloc v2 and v3: that it reads so is our check that the index is
/// right.
const MI_PURGE_DELAY_DEFAULTS: [std::ffi::c_long; 2] = [10, 1000];

/// Freed pages go back to the system at once instead of up to a second later (mimalloc v3's
/// default; v2's is 10 ms): under load a member's
/// connections and batches free memory all the time, and the delay kept ~5 MiB more resident
/// for no measurable gain in throughput (docs/decisions.md, "Memory of a member"). Left alone if
/// the option does not read as mimalloc's default purge delay (a MIMALLOC_PURGE_DELAY set by
/// the operator, or another mimalloc whose options are numbered differently).
fn purge_freed_memory_at_once() {
    // SAFETY: plain calls into the allocator's option table, which takes any index.
    unsafe {
        if MI_PURGE_DELAY_DEFAULTS.contains(&mi_option_get(MI_OPTION_PURGE_DELAY))
            && std::env::var_os("MIMALLOC_PURGE_DELAY").is_none()
        {
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

fn main() {
    purge_freed_memory_at_once();
    corral::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dump-log") => std::process::exit(dump_log(&args[1..])),
        Some("dump-snapshot") => std::process::exit(dump_snapshot(&args[1..])),
        Some("import-zookeeper") => std::process::exit(corral::zkfiles::import::main(&args[1..])),
        Some("export-zookeeper") => std::process::exit(corral::zkfiles::export::main(&args[1..])),
        Some("cli") => std::process::exit(corral::cli::main(&args[1..])),
        _ => {}
    }
    let cfg = match Config::from_args(args.into_iter()) {
        Ok(cfg) => cfg,
        Err(ConfigError::Help(text)) => {
            print!("{text}");
            return;
        }
        Err(e) => {
            eprintln!("corral: {e}");
            std::process::exit(2);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    corral::auth::register(&cfg.sasl);
    corral::auth::provider::enable_x509(&cfg);
    if let Err(e) = corral::server::run(cfg) {
        eprintln!("corral: {e}");
        std::process::exit(1);
    }
}

/// `corral dump-log <segment>...`: prints every record of log segments, like ZooKeeper's
/// TxnLogToolkit, for operators and tests. Exit status 1 if a segment has a torn tail.
fn dump_log(paths: &[String]) -> i32 {
    use corral::storage::log::{header_ok, scan, End};
    if paths.is_empty() {
        eprintln!("usage: corral dump-log <dataLogDir>/wal/wal-<seq>.log ...");
        return 2;
    }
    let mut status = 0;
    for p in paths {
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{p}: {e}");
                return 2;
            }
        };
        if !header_ok(&bytes) {
            eprintln!("{p}: not a corral log segment");
            return 2;
        }
        let s = scan(&bytes, None);
        println!("{p}: {} records", s.txns.len());
        for t in &s.txns {
            let op = match &t.op {
                // Session passwords stay out of operators' terminals.
                corral::txn::TxnOp::CreateSession { timeout_ms, .. } => {
                    format!("CreateSession {{ timeout_ms: {timeout_ms} }}")
                }
                op => format!("{op:?}"),
            };
            println!(
                "zxid {:#x} session {:#x} cxid {:#x} time {} {op}",
                t.zxid, t.session_id, t.cxid, t.time_ms
            );
        }
        match s.end {
            End::Clean | End::Eof => println!("end of log at offset {}", s.valid_end),
            End::Torn(why) => {
                println!("torn tail at offset {}: {why}", s.valid_end);
                status = 1;
            }
        }
    }
    status
}

const DUMP_SNAPSHOT_USAGE: &str = "\
usage: corral dump-snapshot [--data] [--json] <dataDir>/snapshots/snap-<zxid>.snap
  --data   also print each znode's data, base64-encoded
  --json   print one JSON document instead of text
";

/// `corral dump-snapshot [--data] [--json] <file>`: prints a snapshot like ZooKeeper's
/// SnapshotFormatter (`storage::dump`). Exit status 0 when printed, 1 when the file is not an
/// intact snapshot (nothing is printed then), 2 for usage and I/O errors.
fn dump_snapshot(args: &[String]) -> i32 {
    use corral::storage::dump::{self, Options};
    let mut opts = Options::default();
    let mut path = None;
    for a in args {
        match a.as_str() {
            "-d" | "--data" => opts.data = true,
            "--json" | "-json" => opts.json = true,
            "-h" | "--help" => {
                print!("{DUMP_SNAPSHOT_USAGE}");
                return 0;
            }
            flag if flag.starts_with('-') => {
                eprint!("corral dump-snapshot: unknown option {flag}\n{DUMP_SNAPSHOT_USAGE}");
                return 2;
            }
            p if path.is_none() => path = Some(p),
            _ => {
                eprint!("corral dump-snapshot: one snapshot file at a time\n{DUMP_SNAPSHOT_USAGE}");
                return 2;
            }
        }
    }
    let Some(path) = path else {
        eprint!("{DUMP_SNAPSHOT_USAGE}");
        return 2;
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return 2;
        }
    };
    // Locked and buffered: a million znodes print in seconds, not minutes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = dump::dump_snapshot(path, &bytes, opts, &mut out).and_then(|_| Ok(out.flush()?));
    match result {
        Ok(()) => 0,
        Err(dump::Error::Damaged(why)) => {
            eprintln!("{path}: not an intact corral snapshot: {why}");
            1
        }
        // A reader that went away (`| head`) is not an error worth a message.
        Err(dump::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(dump::Error::Io(e)) => {
            eprintln!("corral dump-snapshot: {e}");
            2
        }
    }
}
