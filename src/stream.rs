//! One target: open its log stream, pass the bytes through the line scanner
//! into a gzip file, resume a cut stream where it broke, and say what
//! happened as a manifest record.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use kube::api::LogParams;
use kube::core::Request;

use crate::api::{ApiClient, ApiError, Failure};
use crate::cli::LogRange;
use crate::discover::{Instance, Target};
use crate::error::Error;
use crate::manifest::{FileRecord, FileStatus};
use crate::scan::{LineScanner, LogTime, Mark};
use crate::sink::{self, GzipFile};
use tokio_util::sync::CancellationToken;

/// What every stream of a run shares.
#[derive(Clone)]
pub struct StreamSettings {
    pub api: ApiClient,
    pub range: LogRange,
    pub run_dir: PathBuf,
    pub compression_level: u32,
    pub idle_timeout: Duration,
    /// Requests for one log, the first included, before a cut stream stays `partial`.
    pub max_attempts: u32,
    /// Cancelled when the shutdown grace is over: open streams close and keep what they have.
    pub abort: CancellationToken,
}

/// The result of exporting one target.
pub struct Outcome {
    pub record: FileRecord,
    /// Checkpoint after what was written (for the next run).
    pub mark: Option<Mark>,
    /// A failure that must stop the whole run (disk full, output not writable).
    pub fatal: Option<Error>,
}

/// Export one target. `resume_from` drops what an earlier run already wrote.
/// No file is created when there is nothing (new) to write.
pub async fn export_target(
    settings: &StreamSettings,
    target: &Target,
    resume_from: Option<Mark>,
) -> Outcome {
    let mut record = record_for(target, FileStatus::Failed, None);
    let mut scanner = LineScanner::new(!settings.range.keep_timestamps, resume_from);
    let final_path = settings.run_dir.join(relative_path(target));
    let mut file: Option<GzipFile> = None;
    // Resuming needs sinceTime; with a tail or byte limit the API's answer
    // to a second request would not continue the first one.
    let resumable = settings.range.is_whole_log();
    let mut cut_reason: Option<String> = None;

    loop {
        if settings.abort.is_cancelled() {
            cut_reason =
                Some(cut_reason.map_or(STOPPED.to_string(), |r| format!("{r}; {STOPPED}")));
            break;
        }
        record.attempts += 1;
        let since = scanner.mark().map(|m| m.time);
        let response = settings
            .api
            .send(|| log_request(target, &settings.range, since))
            .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                let (status, reason) = classify_open_failure(&err);
                if file.is_none() && record.attempts == 1 {
                    record.status = status;
                    record.reason = Some(reason);
                    return Outcome {
                        record,
                        mark: resume_from,
                        fatal: None,
                    };
                }
                // A resume failed (e.g. the pod was deleted): keep what was written.
                cut_reason = Some(format!(
                    "{}; then resuming failed: {reason}",
                    cut_reason.unwrap_or_default()
                ));
                break;
            }
        };
        if response.status() == http::StatusCode::NO_CONTENT {
            record.status = FileStatus::Skipped;
            record.reason = Some("pod is not scheduled to a node yet: no log exists".into());
            return Outcome {
                record,
                mark: resume_from,
                fatal: None,
            };
        }
        let mut write = |bytes: &[u8]| -> std::io::Result<()> {
            let out = match &mut file {
                Some(out) => out,
                None => file.insert(create_file(&final_path, settings.compression_level)?),
            };
            out.write(bytes)
        };
        let mut body = response.into_body();
        let broke: Option<String> = loop {
            let frame = tokio::select! {
                _ = settings.abort.cancelled() => break Some(STOPPED.to_string()),
                frame = tokio::time::timeout(settings.idle_timeout, body.frame()) => frame,
            };
            match frame {
                Err(_) => break Some(format!("no data for {}s", settings.idle_timeout.as_secs())),
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(format!("the connection broke ({e})")),
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(e) = scanner.feed(&data, &mut write) {
                        return fatal_outcome(
                            record,
                            resume_from,
                            Error::from_write(&final_path, &e),
                        );
                    }
                }
            }
        };
        match broke {
            None => {
                if let Err(e) = scanner.finish(&mut write) {
                    return fatal_outcome(record, resume_from, Error::from_write(&final_path, &e));
                }
                cut_reason = None;
                break;
            }
            Some(reason) => {
                tracing::debug!(
                    namespace = %target.pod.namespace, pod = %target.pod.name, container = %target.container,
                    attempt = record.attempts, "log stream cut: {reason}"
                );
                let stopped = settings.abort.is_cancelled();
                cut_reason = Some(reason);
                if stopped || !resumable || record.attempts >= settings.max_attempts {
                    break;
                }
                scanner.prepare_resume();
                tokio::time::sleep(Duration::from_millis(100 * record.attempts as u64)).await;
            }
        }
    }

    let stats = scanner.stats().clone();
    record.lines = stats.lines;
    record.bytes = stats.bytes_written;
    record.first_timestamp = stats.first.map(LogTime::to_rfc3339);
    record.last_timestamp = stats.last.map(LogTime::to_rfc3339);
    record.status = match &cut_reason {
        None => FileStatus::Complete,
        Some(_) => FileStatus::Partial,
    };
    record.reason = cut_reason.map(|reason| {
        format!(
            "log stream cut after {} attempt(s): {reason}",
            record.attempts
        )
    });

    // Commit what was written, complete or not: a partial file is still a
    // valid gzip of whole lines, and the manifest says it is partial.
    let Some(file) = file else {
        if record.status == FileStatus::Complete {
            record.reason = Some(if resume_from.is_some() {
                "no new lines since the last run".into()
            } else {
                "the log is empty".into()
            });
        }
        return Outcome {
            record,
            mark: scanner.mark(),
            fatal: None,
        };
    };
    let committed = tokio::task::spawn_blocking(move || file.commit()).await;
    let written = match committed {
        Ok(Ok(written)) => written,
        Ok(Err(e)) => {
            return fatal_outcome(record, resume_from, Error::from_write(&final_path, &e));
        }
        Err(e) => {
            return fatal_outcome(
                record,
                resume_from,
                Error::Write {
                    path: final_path,
                    message: e.to_string(),
                },
            );
        }
    };
    // Usually `<ns>/<pod>/<file>`; another name if that one was taken.
    record.path = Some(match written.path.strip_prefix(&settings.run_dir) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => relative_path(target),
    });
    record.bytes_compressed = written.bytes_compressed;
    record.sha256 = Some(written.sha256);
    Outcome {
        record,
        mark: scanner.mark(),
        fatal: None,
    }
}

const STOPPED: &str = "stopped by shutdown (signal or --deadline)";

fn create_file(path: &std::path::Path, level: u32) -> std::io::Result<GzipFile> {
    if let Some(dir) = path.parent() {
        sink::create_private_dir(dir)?;
    }
    GzipFile::create(path.to_path_buf(), level)
}

fn log_request(
    target: &Target,
    range: &LogRange,
    resume_after: Option<LogTime>,
) -> http::Request<Vec<u8>> {
    let mut params = LogParams {
        container: Some(target.container.clone()),
        previous: target.instance == Instance::Previous,
        // Always on the wire: checkpoints and resumption need them. Stripped on write if asked.
        timestamps: true,
        tail_lines: range.tail_lines.map(|n| n as i64),
        limit_bytes: range.limit_bytes.map(|n| n as i64),
        ..LogParams::default()
    };
    let user_since = range.since_time.map(LogTime::from_chrono);
    match (resume_after, user_since) {
        // sinceTime is whole seconds on the wire: floor, never round (rounding
        // up loses the rest of that second); the scanner drops what was written.
        (Some(mark), since) => {
            let secs = since.map_or(mark.secs, |s| s.secs.max(mark.secs));
            params.since_time = jiff::Timestamp::from_second(secs).ok();
        }
        (None, Some(since)) => params.since_time = jiff::Timestamp::from_second(since.secs).ok(),
        (None, None) => params.since_seconds = range.since_seconds,
    }
    let request = Request::new(format!("/api/v1/namespaces/{}/pods", target.pod.namespace));
    // Building a log request only fails on invalid params, which we never make.
    request.logs(&target.pod.name, &params).unwrap_or_default()
}

/// A log request that got no stream: a legitimate skip or a failure.
fn classify_open_failure(err: &ApiError) -> (FileStatus, String) {
    match err {
        ApiError::Transport(e) => (FileStatus::Failed, e.to_string()),
        ApiError::Status(Failure { code, message, .. }) => match code {
            400 if message.contains("is waiting to start") => {
                (FileStatus::Skipped, format!("container waiting: {message}"))
            }
            400 if message.contains("previous terminated container") => (
                FileStatus::Skipped,
                format!("no previous instance: {message}"),
            ),
            404 => (
                FileStatus::Skipped,
                format!("pod deleted before its log was read: {message}"),
            ),
            401 => (
                FileStatus::Failed,
                format!("401 Unauthorized: the token expired or was revoked ({message})"),
            ),
            403 => (
                FileStatus::Failed,
                format!("forbidden: {message}; run `kube-log-exporter doctor`"),
            ),
            code => (FileStatus::Failed, format!("{code}: {message}")),
        },
    }
}

pub fn relative_path(target: &Target) -> String {
    format!(
        "{}/{}/{}",
        target.pod.namespace,
        target.pod.name,
        target.file_name()
    )
}

/// A manifest record for a target, before anything is known of its log.
pub fn record_for(target: &Target, status: FileStatus, reason: Option<String>) -> FileRecord {
    FileRecord {
        namespace: target.pod.namespace.clone(),
        pod: target.pod.name.clone(),
        pod_uid: target.pod.uid.clone(),
        container: target.container.clone(),
        container_kind: target.kind,
        instance: target.instance,
        container_id: target.container_id.clone(),
        status,
        reason,
        path: None,
        bytes: 0,
        bytes_compressed: 0,
        lines: 0,
        first_timestamp: None,
        last_timestamp: None,
        sha256: None,
        attempts: 0,
    }
}

fn fatal_outcome(mut record: FileRecord, mark: Option<Mark>, fatal: Error) -> Outcome {
    record.status = FileStatus::Failed;
    record.reason = Some(fatal.to_string());
    Outcome {
        record,
        mark,
        fatal: Some(fatal),
    }
}
