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
    let cfg = match Config::from_args(std::env::args().skip(1)) {
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
