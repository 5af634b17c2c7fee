//! What a person sees of a run on stderr: a progress bar while it goes
//! (containers done / discovered so far, bytes, rate, ETA, failures) and a
//! summary at the end — a table on a terminal, otherwise the "export
//! finished" log event (one JSON line with `--log-format json`).
//!
//! The program's own log lines are written through [`log_line`], which lifts
//! the bar while a line is printed, so the two never mix on the screen.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};

use crate::cli::{Config, LogFormat, ProgressMode};
use crate::discover::Discovered;
use crate::manifest::{Counts, FileRecord, FileStatus};

/// The bar log lines must step around; `None` when no bar is drawn.
static SHOWN_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

// wide_bar takes what the text leaves of the terminal's width.
const TEMPLATE: &str = "{spinner} {elapsed} [{wide_bar}] {pos}/{len} containers · {exported} · {rate} · ETA {eta} · {failures} failed";

/// What a finished run tells the summary.
#[derive(Debug)]
pub struct RunSummary<'a> {
    pub run_id: &'a str,
    pub run_dir: &'a Path,
    pub counts: &'a Counts,
    pub exit_code: u8,
}

/// One run's progress. Cheap to clone (the stream tasks report through clones).
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    bar: ProgressBar,
    /// The bar is drawn (and registered for log lines to step around).
    drawn: bool,
    /// Summary as a table (a person is watching) rather than a log event.
    table: bool,
    /// Targets taken from discovery so far.
    taken: AtomicU64,
    exported: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    pub fn new(config: &Config) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let text = config.log_format == LogFormat::Text;
        let exported = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let draw = match config.progress {
            ProgressMode::Never => false,
            ProgressMode::Auto => terminal && text && !dumb,
            // Asked for: drawn even into a pipe (e.g. `kubectl logs -f` of a Job).
            ProgressMode::Always => true,
        };
        let target = draw.then(|| ProgressDrawTarget::term_like_with_hz(Box::new(StderrTerm), 8));
        let drawn = target.is_some();
        let bar = match target {
            Some(target) => {
                // No length until the first target: an empty bar, not a full 0/0 one.
                let bar = ProgressBar::with_draw_target(None, target)
                    .with_style(style(exported.clone(), failures.clone()));
                bar.enable_steady_tick(Duration::from_millis(250));
                *shown_bar() = Some(bar.clone());
                bar
            }
            None => ProgressBar::hidden(),
        };
        Progress {
            inner: Arc::new(Inner {
                bar,
                drawn,
                table: text && (terminal || config.progress == ProgressMode::Always),
                taken: AtomicU64::new(0),
                exported,
                failures,
                started: Instant::now(),
            }),
        }
    }

    /// Discovery handed the export `found`; `queued` more messages wait in
    /// its channel. The total is what was discovered so far: it grows while
    /// listing goes on.
    pub fn discovered(&self, found: &Discovered, queued: usize) {
        let taken = match found {
            Discovered::Target(_) => self.inner.taken.fetch_add(1, Ordering::Relaxed) + 1,
            Discovered::Namespace(_) => self.inner.taken.load(Ordering::Relaxed),
        };
        // `queued` may count a namespace message or two: a slight, passing overestimate.
        self.inner.bar.set_length(taken + queued as u64);
    }

    /// One target is done, whatever its outcome.
    pub fn finished(&self, record: &FileRecord) {
        self.inner
            .exported
            .fetch_add(record.bytes, Ordering::Relaxed);
        if matches!(record.status, FileStatus::Failed | FileStatus::Partial) {
            self.inner.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.bar.inc(1);
    }

    /// Clear the bar and show the run's summary.
    pub fn finish(&self, run: &RunSummary) {
        self.inner.clear();
        let elapsed = self.inner.started.elapsed();
        let c = run.counts;
        if self.inner.table {
            eprint!("{}", summary_table(run, elapsed));
            return;
        }
        tracing::info!(
            run_id = run.run_id,
            exit_code = run.exit_code,
            complete = c.complete,
            partial = c.partial,
            skipped = c.skipped,
            failed = c.failed,
            bytes = c.bytes,
            bytes_compressed = c.bytes_compressed,
            lines = c.lines,
            ratio = ratio(c).map(|r| (r * 100.0).round() / 100.0),
            seconds = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            run_dir = %run.run_dir.display(),
            "export finished"
        );
    }
}

impl Inner {
    fn clear(&self) {
        if self.drawn {
            *shown_bar() = None;
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Inner {
    /// A run that ends early (an error) leaves no bar behind.
    fn drop(&mut self) {
        self.clear();
    }
}

fn shown_bar() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // A panic while holding it cannot leave the Option half-written.
    SHOWN_BAR.lock().unwrap_or_else(|e| e.into_inner())
}

fn style(exported: Arc<AtomicU64>, failures: Arc<AtomicU64>) -> ProgressStyle {
    let rate_source = exported.clone();
    ProgressStyle::with_template(TEMPLATE)
        // The template is a constant; a typo in it shows as a plain bar, never a failure.
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key(
            "exported",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", HumanBytes(exported.load(Ordering::Relaxed)));
            },
        )
        .with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let secs = state.elapsed().as_secs_f64().max(0.001);
                let rate = rate_source.load(Ordering::Relaxed) as f64 / secs;
                let _ = write!(w, "{}/s", HumanBytes(rate as u64));
            },
        )
        .with_key(
            "failures",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", failures.load(Ordering::Relaxed));
            },
        )
}

fn ratio(c: &Counts) -> Option<f64> {
    (c.bytes_compressed > 0).then(|| c.bytes as f64 / c.bytes_compressed as f64)
}

fn summary_table(run: &RunSummary, elapsed: Duration) -> String {
    let c = run.counts;
    let secs = elapsed.as_secs_f64();
    let ratio = ratio(c).map_or("-".to_string(), |r| format!("{r:.1} : 1"));
    let rows = [
        ("complete", c.complete.to_string(), String::new()),
        ("partial", c.partial.to_string(), String::new()),
        ("skipped", c.skipped.to_string(), String::new()),
        ("failed", c.failed.to_string(), String::new()),
        (
            "bytes in",
            HumanBytes(c.bytes).to_string(),
            format!("{} lines", HumanCount(c.lines)),
        ),
        (
            "bytes out",
            HumanBytes(c.bytes_compressed).to_string(),
            "gzip".to_string(),
        ),
        ("ratio", ratio, String::new()),
        (
            "wall time",
            format!("{secs:.1}s"),
            format!(
                "{}/s",
                HumanBytes((c.bytes as f64 / secs.max(0.001)) as u64)
            ),
        ),
    ];
    let mut t = format!(
        "export finished: run {}, exit code {}{}\n",
        run.run_id,
        run.exit_code,
        match run.exit_code {
            0 => "",
            // A namespace that could not be listed fails the run with every count at zero.
            _ => " (see manifest.json)",
        }
    );
    for (label, value, note) in rows {
        let _ = write!(t, "  {label:<12}{value:>12}");
        if !note.is_empty() {
            let _ = write!(t, "  ({note})");
        }
        t.push('\n');
    }
    let _ = writeln!(t, "  {:<12}{}", "run folder", run.run_dir.display());
    t
}

/// tracing's writer for the program's log lines: one buffered line, written
/// to stderr on drop while the bar (if one is drawn) is lifted.
pub fn log_line() -> LogLine {
    LogLine(Vec::with_capacity(256))
}

pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let write = || {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&self.0);
            let _ = stderr.flush();
        };
        let bar = shown_bar().clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// Where the bar is drawn: stderr, with plain ANSI cursor moves (also into
/// a pipe, for `--progress always`).
struct StderrTerm;

impl StderrTerm {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl std::fmt::Debug for StderrTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StderrTerm")
    }
}

impl indicatif::TermLike for StderrTerm {
    /// Two columns short of the terminal's width: the `^C` a terminal echoes
    /// after a full-width bar would wrap it, and its last frame would stay behind.
    fn width(&self) -> u16 {
        let columns = terminal_columns()
            .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or(80);
        columns.saturating_sub(2).max(20)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}A"))
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}B"))
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}C"))
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}D"))
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Columns of the terminal on stderr, if it is one.
fn terminal_columns() -> Option<u16> {
    console::Term::stderr()
        .size_checked()
        .map(|(_rows, columns)| columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_counts_bytes_ratio_and_folder() {
        let counts = Counts {
            complete: 398,
            partial: 1,
            skipped: 2,
            failed: 3,
            bytes: 8 * 1024 * 1024,
            bytes_compressed: 1024 * 1024,
            lines: 1000,
        };
        let table = summary_table(
            &RunSummary {
                run_id: "20261122T030000Z",
                run_dir: Path::new("/out/runs/20261122T030000Z"),
                counts: &counts,
                exit_code: 3,
            },
            Duration::from_secs(4),
        );
        assert!(table.contains("complete             398"), "{table}");
        assert!(table.contains("exit code 3"), "{table}");
        assert!(table.contains("8.00 MiB"), "{table}");
        assert!(table.contains("8.0 : 1"), "{table}");
        assert!(table.contains("4.0s"), "{table}");
        assert!(table.contains("/out/runs/20261122T030000Z"), "{table}");
    }
}
