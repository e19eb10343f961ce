//! The `corral` binary: parse zoo.cfg and flags, start the server.

use corral::config::{Config, ConfigError};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dump-log") {
        std::process::exit(dump_log(&args[1..]));
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
