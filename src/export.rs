//! One run: discovery feeds targets, at most `--concurrency` log streams run
//! at once (the rest wait their turn), outcomes are collected into the
//! manifest, which is written last.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::api::{ApiClient, RetryPolicy};
use crate::cli::Config;
use crate::connect::Connection;
use crate::discover::{Discovered, Discovery, NamespaceListing};
use crate::error::{Error, Result};
use crate::manifest::{Counts, FileRecord, FileStatus, Manifest, NamespaceRecord, SelectionRecord};
use crate::select::OwnPod;
use crate::sink;
use crate::stream::{self, Outcome, StreamSettings};

/// What a finished run reports to `main`.
#[derive(Debug)]
pub struct RunReport {
    pub run_dir: PathBuf,
    pub counts: Counts,
    pub exit_code: u8,
    /// The error that stopped the run early, if any (already in the manifest).
    pub fatal: Option<Error>,
}

pub const RUNS_DIR: &str = "runs";

/// A run's folder name: its UTC start time, e.g. 20261122T030000Z.
pub fn default_run_id(started: DateTime<Utc>) -> String {
    started.format("%Y%m%dT%H%M%SZ").to_string()
}

pub async fn run(config: Config, conn: Connection) -> Result<RunReport> {
    let started_at = Utc::now();
    let run_id = config
        .run_id
        .clone()
        .unwrap_or_else(|| default_run_id(started_at));
    let run_dir = prepare_run_dir(&config.output, &run_id)?;
    tracing::info!(run_id, server = %conn.server, connection = %conn.source, "export started");

    let api = ApiClient::new(conn.clone(), RetryPolicy::new(config.max_attempts));
    let selection = Arc::new(config.selection.clone());
    let discovery = Discovery {
        api: api.clone(),
        selection,
        own_pod: OwnPod::detect(conn.own_namespace.clone()),
    };
    // Bounded: discovery runs ahead of the streams by at most this many targets.
    let (tx, mut rx) = mpsc::channel::<Discovered>(4096);
    let discovery_task = tokio::spawn(discovery.run(tx));

    let settings = Arc::new(StreamSettings {
        api,
        range: config.range.clone(),
        run_dir: run_dir.clone(),
        compression_level: config.compression_level,
        idle_timeout: config.connect.stream_idle_timeout,
        max_attempts: config.max_attempts,
    });
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut streams: JoinSet<Outcome> = JoinSet::new();
    let mut collected = Collected::default();

    while let Some(found) = rx.recv().await {
        match found {
            Discovered::Namespace(listing) => collected.namespaces.push(listing),
            Discovered::Target(target) => {
                if collected.fatal.is_some() {
                    continue; // stop starting streams; discovery drains into nothing
                }
                // Wait for a free slot: never an error for "too many pods".
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let settings = settings.clone();
                streams.spawn(async move {
                    let outcome = stream::export_target(&settings, &target, None).await;
                    drop(slot);
                    outcome
                });
                while let Some(done) = streams.try_join_next() {
                    collected.add(done);
                }
            }
        }
    }
    while let Some(done) = streams.join_next().await {
        collected.add(done);
    }
    let discovery_error = match discovery_task.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(Error::Usage(format!("internal error in discovery: {e}"))),
    };
    if collected.fatal.is_none() {
        collected.fatal = discovery_error;
    }

    // Renames are durable only once their folders are synced.
    let dirs: BTreeSet<PathBuf> = collected
        .files
        .iter()
        .filter_map(|f| f.path.as_ref())
        .filter_map(|p| run_dir.join(p).parent().map(Path::to_path_buf))
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for dir in dirs {
            let _ = sink::fsync_dir(&dir);
        }
    })
    .await;

    collected.files.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container, a.instance).cmp(&(
            &b.namespace,
            &b.pod,
            &b.container,
            b.instance,
        ))
    });
    let counts = Counts::of(&collected.files);
    let namespace_errors: Vec<String> = collected
        .namespaces
        .iter()
        .filter_map(|n| {
            n.error
                .as_ref()
                .map(|e| format!("namespace {}: {e}", n.name))
        })
        .collect();
    let exit_code = if collected.fatal.is_some() {
        1
    } else if counts.failed > 0 || counts.partial > 0 || !namespace_errors.is_empty() {
        3
    } else {
        0
    };
    let mut errors = namespace_errors;
    if let Some(fatal) = &collected.fatal {
        errors.push(fatal.to_string());
    }
    let manifest = Manifest {
        format_version: crate::manifest::FORMAT_VERSION,
        run_id: run_id.clone(),
        started_at,
        finished_at: Utc::now(),
        server: conn.server.clone(),
        connection: conn.source.clone(),
        exporter_version: env!("CARGO_PKG_VERSION").to_string(),
        selection: selection_record(&config),
        counts: counts.clone(),
        exit_code,
        errors,
        namespaces: collected
            .namespaces
            .iter()
            .map(|n| NamespaceRecord {
                name: n.name.clone(),
                pods: n.pods,
                containers: n.targets,
                error: n.error.clone(),
            })
            .collect(),
        files: collected.files,
    };
    let manifest_dir = run_dir.clone();
    let write = tokio::task::spawn_blocking(move || manifest.write(&manifest_dir)).await;
    match write {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let err = Error::from_write(run_dir.join(crate::manifest::MANIFEST_FILE), &e);
            if collected.fatal.is_none() {
                collected.fatal = Some(err);
            }
        }
        Err(e) => tracing::error!("could not write the manifest: {e}"),
    }
    tracing::info!(
        run_id,
        complete = counts.complete,
        partial = counts.partial,
        skipped = counts.skipped,
        failed = counts.failed,
        bytes = counts.bytes,
        bytes_compressed = counts.bytes_compressed,
        "export finished"
    );
    Ok(RunReport {
        run_dir,
        counts,
        exit_code: if collected.fatal.is_some() {
            1
        } else {
            exit_code
        },
        fatal: collected.fatal,
    })
}

#[derive(Default)]
struct Collected {
    files: Vec<FileRecord>,
    namespaces: Vec<NamespaceListing>,
    fatal: Option<Error>,
}

impl Collected {
    fn add(&mut self, joined: std::result::Result<Outcome, tokio::task::JoinError>) {
        match joined {
            Ok(outcome) => {
                log_outcome(&outcome.record);
                if let Some(fatal) = outcome.fatal
                    && self.fatal.is_none()
                {
                    tracing::error!("{fatal}");
                    self.fatal = Some(fatal);
                }
                self.files.push(outcome.record);
            }
            Err(e) => {
                if self.fatal.is_none() {
                    self.fatal = Some(Error::Usage(format!("internal error in a log stream: {e}")));
                }
            }
        }
    }
}

fn log_outcome(record: &FileRecord) {
    let reason = record.reason.as_deref().unwrap_or("");
    match record.status {
        FileStatus::Complete => tracing::debug!(
            namespace = %record.namespace, pod = %record.pod, container = %record.container,
            bytes = record.bytes, "exported"
        ),
        FileStatus::Skipped => tracing::info!(
            namespace = %record.namespace, pod = %record.pod, container = %record.container, "skipped: {reason}"
        ),
        FileStatus::Partial | FileStatus::Failed => tracing::warn!(
            namespace = %record.namespace, pod = %record.pod, container = %record.container,
            status = ?record.status, "{reason}"
        ),
    }
}

/// Create `OUTPUT/runs/RUN_ID` (0700) and prove it is writable before any
/// request is made.
fn prepare_run_dir(output: &Path, run_id: &str) -> Result<PathBuf> {
    let run_dir = output.join(RUNS_DIR).join(run_id);
    sink::create_private_dir(&run_dir).map_err(|e| Error::from_write(&run_dir, &e))?;
    let probe = run_dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::from_write(&run_dir, &e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(run_dir)
}

fn selection_record(config: &Config) -> SelectionRecord {
    let s = &config.selection;
    let pattern = |re: &regex::Regex| {
        let text = re.as_str();
        text.strip_prefix("^(?:")
            .and_then(|t| t.strip_suffix(")$"))
            .unwrap_or(text)
            .to_string()
    };
    SelectionRecord {
        namespaces: s.namespaces.clone(),
        exclude_namespaces: s.exclude_namespaces.iter().map(pattern).collect(),
        pod: s.pod.as_ref().map(pattern),
        exclude_pods: s.exclude_pods.iter().map(pattern).collect(),
        label_selector: s.label_selector.clone(),
        field_selector: s.field_selector.clone(),
        container: s.container.as_ref().map(pattern),
        exclude_containers: s.exclude_containers.iter().map(pattern).collect(),
        container_kinds: s.container_kinds.clone(),
        since_seconds: config.range.since_seconds,
        since_time: config.range.since_time.map(|t| t.to_rfc3339()),
        tail_lines: config.range.tail_lines,
        limit_bytes: config.range.limit_bytes,
        timestamps: config.range.keep_timestamps,
    }
}
