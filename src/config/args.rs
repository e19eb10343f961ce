//! The command line: flags, the zoo.cfg path and ZooKeeper's legacy positional form,
//! parsed into settings that the builder applies after the zoo.cfg (so a flag wins whatever
//! its place), and the `--help` text. Reads no files.

use std::path::PathBuf;

use super::properties::java_trim;
use super::{ConfigError, Origin, Setting};

/// The command line, parsed but not yet applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub config_path: Option<PathBuf>,
    /// In command-line order.
    pub settings: Vec<Setting>,
}

const USAGE: &str = "\
corral: a ZooKeeper-compatible coordination server

Usage:
  corral [OPTIONS] [zoo.cfg]
  corral [OPTIONS] <port> <dataDir> [tickTime] [maxClientCnxns]

Options:
  --config <path>      read settings from a ZooKeeper zoo.cfg
  --port <n>           client port (zoo.cfg clientPort; default 2181; 0 picks a free port)
  --address <ip>       client listen address (clientPortAddress; default 127.0.0.1,
                       use 0.0.0.0 to listen on all interfaces)
  --data-dir <path>    snapshots, logs and myid (dataDir; default ./data)
  --cores <n>          shard executors to run (corral.cores; default: the CPUs in
                       the process affinity mask)
  --set <key=value>    set any zoo.cfg key; repeatable
  -h, --help           print this help

Command-line settings override the zoo.cfg whatever their order; among
themselves the last one wins. Unknown zoo.cfg keys are warned about, not fatal.

Tools (read the files; no server needed):
  corral dump-log <dataLogDir>/wal/wal-<seq>.log ...
                       print a transaction log segment's records and where it ends
  corral dump-snapshot [--data] [--json] <dataDir>/snapshots/snap-<zxid>.snap
                       print a snapshot's znodes (stat, ACL; --data: base64 data),
                       sessions and totals; exit status 1 if it is damaged

Client:
  corral cli [-server host:port,...] [-timeout ms] [-r] [cmd args...]
                       zkCli.sh's shell: one command and exit, or interactive
";

/// The `--help` text.
pub fn usage() -> &'static str {
    USAGE
}

/// Parses the arguments (without the program name) into a config path and settings.
/// Reads no files.
pub fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, ConfigError> {
    let mut out = Args::default();
    let mut positional: Vec<String> = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(ConfigError::Help(USAGE));
        }
        if arg == "--" {
            positional.extend(args.by_ref());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let key = match flag.as_str() {
            "--config" => None,
            "--port" => Some("clientPort"),
            "--address" => Some("clientPortAddress"),
            "--data-dir" => Some("dataDir"),
            "--cores" => Some("corral.cores"),
            "--set" => None,
            _ => return Err(ConfigError::Usage(format!("unknown option `{arg}`"))),
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| ConfigError::Usage(format!("`{flag}` needs a value")))?,
        };
        let origin = Origin::Flag(flag.clone());
        match (flag.as_str(), key) {
            ("--config", _) => set_config_path(&mut out, PathBuf::from(value))?,
            ("--set", _) => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ConfigError::Usage(format!("`--set {value}`: expected key=value"))
                })?;
                let k = k.trim();
                if k.is_empty() {
                    return Err(ConfigError::Usage(format!("`--set {value}`: empty key")));
                }
                out.settings.push(Setting {
                    key: k.to_string(),
                    value: java_trim(v).to_string(),
                    origin,
                });
            }
            (_, Some(key)) => out.settings.push(Setting {
                key: key.to_string(),
                value: value.trim().to_string(),
                origin,
            }),
            (_, None) => unreachable!("every flag maps to a key or is handled above"),
        }
    }
    match positional.len() {
        0 => {}
        // `zkServer.sh` and `QuorumPeerMain` pass the zoo.cfg as the only argument.
        1 => set_config_path(&mut out, PathBuf::from(positional.remove(0)))?,
        // `ZooKeeperServerMain port dataDir [tickTime] [maxClientCnxns]`.
        2..=4 => {
            let keys = ["clientPort", "dataDir", "tickTime", "maxClientCnxns"];
            // Inserted before the flags so that flags still win.
            let legacy: Vec<Setting> = positional
                .into_iter()
                .zip(keys)
                .enumerate()
                .map(|(n, (value, key))| Setting {
                    key: key.to_string(),
                    value,
                    origin: Origin::Positional(n + 1),
                })
                .collect();
            out.settings.splice(0..0, legacy);
        }
        _ => {
            return Err(ConfigError::Usage(format!(
                "too many arguments: {}",
                positional.join(" ")
            )))
        }
    }
    Ok(out)
}

fn set_config_path(args: &mut Args, path: PathBuf) -> Result<(), ConfigError> {
    if let Some(previous) = &args.config_path {
        return Err(ConfigError::Usage(format!(
            "two config files given: {} and {}",
            previous.display(),
            path.display()
        )));
    }
    args.config_path = Some(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builder::tests::{args, no_myid};
    use crate::config::Config;

    #[test]
    fn parse_args_forms() {
        let a = parse_args(args(&["--port", "5", "/etc/zk/zoo.cfg", "--set", "a=b=c"])).unwrap();
        assert_eq!(a.config_path, Some(PathBuf::from("/etc/zk/zoo.cfg")));
        assert_eq!(a.settings.len(), 2);
        assert_eq!(a.settings[1].key, "a");
        assert_eq!(a.settings[1].value, "b=c");
        let a = parse_args(args(&["--config=/x.cfg"])).unwrap();
        assert_eq!(a.config_path, Some(PathBuf::from("/x.cfg")));
        assert!(matches!(
            parse_args(args(&["--config", "a", "b"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--bogus"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--port"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--set", "novalue"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["a", "b", "c", "d", "e"])),
            Err(ConfigError::Usage(_))
        ));
        match parse_args(args(&["--port", "1", "-h"])) {
            Err(ConfigError::Help(text)) => assert_eq!(text, usage()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Config::from_args(args(&["--help"])),
            Err(ConfigError::Help(_))
        ));
    }

    #[test]
    fn legacy_positional_form() {
        let parsed = parse_args(args(&[
            "2222",
            "/tmp/zkdata",
            "1000",
            "5",
            "--port",
            "3333",
        ]))
        .unwrap();
        let c = Config::from_sources(None, &parsed.settings, &no_myid).unwrap();
        assert_eq!(c.client_port, 3333, "flags beat positional arguments");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zkdata"));
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.max_client_cnxns, 5);
        let err = Config::from_sources(
            None,
            &parse_args(args(&["x", "/d"])).unwrap().settings,
            &no_myid,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("command-line argument 1:"),
            "{err}"
        );
    }
}
