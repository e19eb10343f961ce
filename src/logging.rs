//! The server's log: where it goes, its format, and its level, which can change while the
//! server runs.
//!
//! - Level: `CORRAL_LOG` at start (a tracing filter: `info`, `debug`, `corral::zab=debug,info`;
//!   default `info`). At runtime SIGUSR1 makes the log one level more verbose and SIGUSR2 one
//!   less (src/server/stop.rs takes the signals); `set_filter` sets any filter.
//! - Format: `CORRAL_LOG_FORMAT=json` writes one JSON object per line (timestamp, level,
//!   target, fields, message) for log shippers; `text` (the default) is the human format.
//! - Destination: stderr, where systemd's journal, a container runtime or a redirect takes it.
//!
//! The filter sits behind a `reload` layer, so changing it touches no logging call site and
//! costs the hot path nothing while a level is off.

use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The plain levels SIGUSR1/SIGUSR2 step through, least verbose first.
const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

struct Control {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter in force, as it was given.
    spec: Mutex<String>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// The log's format, from `CORRAL_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `text` or `json` (any case); anything else is an error naming the choices.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "CORRAL_LOG_FORMAT={other}: expected `text` or `json`"
            )),
        }
    }
}

/// Starts the log from `CORRAL_LOG` and `CORRAL_LOG_FORMAT`. A bad value of either is reported
/// on stderr and the default used: a typo in a log setting should not keep a server down.
pub fn init() {
    let spec = std::env::var("CORRAL_LOG").unwrap_or_else(|_| "info".to_string());
    let (filter, spec) = match EnvFilter::try_new(&spec) {
        Ok(f) => (f, spec),
        Err(e) => {
            eprintln!("corral: CORRAL_LOG={spec}: {e}; logging at info");
            (EnvFilter::new("info"), "info".to_string())
        }
    };
    let format = std::env::var("CORRAL_LOG_FORMAT")
        .ok()
        .map(|v| {
            Format::parse(&v).unwrap_or_else(|e| {
                eprintln!("corral: {e}; writing text");
                Format::Text
            })
        })
        .unwrap_or(Format::Text);
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colours only for a person at a terminal: in a file or a pipe they are
                    // noise to grep.
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_ok() {
        let _ = CONTROL.set(Control {
            handle,
            spec: Mutex::new(spec),
        });
    }
}

/// The filter in force (`info`, `corral::zab=debug,info`, ...).
pub fn current() -> String {
    CONTROL
        .get()
        .map(|c| c.spec.lock().unwrap().clone())
        .unwrap_or_default()
}

/// Replaces the filter; returns the one it replaced. An invalid filter changes nothing.
pub fn set_filter(spec: &str) -> Result<String, String> {
    let spec = spec.trim();
    let filter = EnvFilter::try_new(spec).map_err(|e| format!("bad log filter {spec:?}: {e}"))?;
    let control = CONTROL.get().ok_or("the log is not started")?;
    let old = current();
    // Said under whichever filter shows it: the old one when the new one hides warnings.
    let said_before = tracing::enabled!(tracing::Level::WARN);
    if said_before {
        tracing::warn!(from = %old, to = %spec, "log filter changed");
    }
    control
        .handle
        .reload(filter)
        .map_err(|e| format!("cannot change the log filter: {e}"))?;
    *control.spec.lock().unwrap() = spec.to_string();
    if !said_before {
        tracing::warn!(from = %old, to = %spec, "log filter changed");
    }
    Ok(old)
}

/// One level more (`more`) or less verbose than the filter in force: the signals' step. A
/// filter with per-target parts steps from its default level and loses the parts.
pub fn step(more: bool) -> Result<String, String> {
    let next = step_spec(&current(), more);
    set_filter(&next)?;
    Ok(next)
}

/// The plain level one step from `spec`'s default level (the part without a `target=`).
fn step_spec(spec: &str, more: bool) -> String {
    let base = spec
        .split(',')
        .map(str::trim)
        .rfind(|d| !d.contains('='))
        .unwrap_or("info")
        .to_ascii_lowercase();
    let i = match base.as_str() {
        "off" => 0,
        b => LEVELS.iter().position(|l| *l == b).unwrap_or(2),
    };
    let j = if more {
        (i + 1).min(LEVELS.len() - 1)
    } else {
        i.saturating_sub(1)
    };
    LEVELS[j].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_through_the_levels_and_stops_at_the_ends() {
        assert_eq!(step_spec("info", true), "debug");
        assert_eq!(step_spec("debug", true), "trace");
        assert_eq!(step_spec("trace", true), "trace");
        assert_eq!(step_spec("info", false), "warn");
        assert_eq!(step_spec("error", false), "error");
        assert_eq!(step_spec("WARN", false), "error");
    }

    #[test]
    fn a_filter_with_targets_steps_from_its_default_level() {
        assert_eq!(step_spec("corral::zab=trace,warn", true), "info");
        assert_eq!(step_spec("corral::zab=trace", true), "debug");
        assert_eq!(step_spec("", true), "debug");
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse("JSON"), Ok(Format::Json));
        assert_eq!(Format::parse("text"), Ok(Format::Text));
        assert!(Format::parse("xml").unwrap_err().contains("text"));
    }
}
