//! kube-log-exporter: copy the logs of Kubernetes pods into gzip files.
//!
//! A log byte travels: cli (flags -> Config) -> connect (Config -> client)
//! -> discover (paged lists -> targets, filtered by select) -> export (one
//! run, bounded concurrency) -> stream (one target: request, resume, scan)
//! -> sink (gzip, temp file, fsync, rename) -> manifest (the run's record).
//! No module reaches back up that path.

pub mod api;
pub mod cli;
pub mod connect;
pub mod discover;
pub mod doctor;
pub mod error;
pub mod export;
pub mod manifest;
pub mod permissions;
pub mod progress;
pub mod retention;
pub mod scan;
pub mod select;
pub mod sink;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod verify;

pub use error::{Error, Result};

use cli::{Cli, Command, LogFormat};

/// Run the program for parsed flags; returns the process exit code.
pub fn main_with(cli: Cli) -> u8 {
    let log_format = cli.telemetry.log_format;
    if let Err(err) = telemetry::init(&cli.telemetry) {
        return report(&err, log_format);
    }
    limit_heap_growth();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => export_command(cli.export, &cli.telemetry).await,
            Some(Command::Export(args)) => export_command(*args, &cli.telemetry).await,
            Some(Command::Doctor(args)) => doctor::run(*args).await,
            Some(Command::Verify(args)) => verify::run(&args.run_dir),
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => report(&err, log_format),
    }
}

async fn export_command(args: cli::ExportArgs, telemetry: &cli::TelemetryArgs) -> Result<u8> {
    let config = cli::Config {
        progress: telemetry.progress,
        log_format: telemetry.log_format,
        ..args.into_config()?
    };
    let conn = connect::connect(&config.connect).await?;
    let report = export::run(config, conn).await?;
    match report.fatal {
        Some(fatal) => Err(fatal),
        None => Ok(report.exit_code),
    }
}

/// glibc raises its mmap threshold each time a big block is freed, so the
/// per-stream buffers (zlib state, HTTP read buffers) of the thousands of
/// streams of a run end up in fragmented arenas: peak RSS grew with the
/// number of pods (`make bench`: 78 MiB in scenario A, 180 MiB in B). A fixed
/// threshold keeps blocks of 256 KiB and more in mmaps that go back to the OS
/// when freed (A 31 MiB, B 38 MiB). musl (the static image) has no such knob.
fn limit_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Errors are printed once, as one sentence (never a backtrace).
fn report(err: &Error, format: LogFormat) -> u8 {
    match format {
        LogFormat::Json => tracing::error!(exit_code = err.exit_code(), "{err}"),
        LogFormat::Text => eprintln!("error: {err}"),
    }
    err.exit_code()
}
