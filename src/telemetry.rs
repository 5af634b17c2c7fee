//! The program's own logs: tracing to stderr, human text on a terminal,
//! one JSON object a line with `--log-format json` (what the CronJob uses).

use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, TelemetryArgs};
use crate::error::{Error, Result};

pub fn init(args: &TelemetryArgs) -> Result<()> {
    let filter = EnvFilter::try_new(default_directives(&args.log_level)).map_err(|e| {
        Error::Usage(format!(
            "--log-level {:?} is not a level or tracing filter ({e}); use error, warn, info, debug or trace",
            args.log_level
        ))
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::log_line)
        .with_target(false);
    let result = match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .compact()
            .try_init(),
    };
    // A second init (tests calling `run` twice in one process) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// A bare level applies to this crate only; kube/hyper stay at warn so that
/// `--log-level debug` shows the exporter's decisions, not HTTP internals.
fn default_directives(level: &str) -> String {
    match level.trim() {
        "error" | "warn" | "info" | "debug" | "trace" => {
            // kube_client logs transport errors we already turn into sentences.
            format!("warn,kube_client=off,kube_log_exporter={}", level.trim())
        }
        other => other.to_string(),
    }
}
