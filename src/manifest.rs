//! The run's record, `runs/<RUN_ID>/manifest.json`, written last and
//! atomically. What happened to every selected container is in it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cli::ContainerKind;
use crate::discover::Instance;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Everything the API had was written.
    Complete,
    /// Some lines were written, then the stream could not be finished (reason says why).
    Partial,
    /// Nothing to export, legitimately (pending pod, waiting container, no previous instance, pod deleted).
    Skipped,
    /// The log could not be read (reason says why).
    Failed,
}

/// One container instance of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub container_kind: ContainerKind,
    pub instance: Instance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Path relative to the run folder; absent when no file was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Bytes before compression (what gunzip gives back).
    pub bytes: u64,
    pub bytes_compressed: u64,
    pub lines: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    /// Of the compressed file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Requests made for this log (more than 1 when a cut stream was resumed).
    pub attempts: u32,
}

/// One namespace's listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    pub pods: u64,
    pub containers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub complete: u64,
    pub partial: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub bytes_compressed: u64,
    pub lines: u64,
}

impl Counts {
    pub fn of(files: &[FileRecord]) -> Counts {
        let mut c = Counts::default();
        for f in files {
            match f.status {
                FileStatus::Complete => c.complete += 1,
                FileStatus::Partial => c.partial += 1,
                FileStatus::Skipped => c.skipped += 1,
                FileStatus::Failed => c.failed += 1,
            }
            c.bytes += f.bytes;
            c.bytes_compressed += f.bytes_compressed;
            c.lines += f.lines;
        }
        c
    }
}

/// The selection as the user gave it, for the record.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SelectionRecord {
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub exclude_pods: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub exclude_containers: Vec<String>,
    pub container_kinds: Vec<ContainerKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_lines: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    pub timestamps: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The API server URL (never credentials).
    pub server: String,
    /// How the exporter connected (kubeconfig + context, in-cluster, proxy).
    pub connection: String,
    pub exporter_version: String,
    pub selection: SelectionRecord,
    pub counts: Counts,
    pub exit_code: u8,
    /// Set when this is one shard of an Indexed Job's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// Run-level problems: namespaces that could not be listed, a fatal error.
    pub errors: Vec<String>,
    /// Lines known to be lost: instances that vanished from the API before
    /// they were read to their end.
    #[serde(default)]
    pub gaps: Vec<String>,
    pub namespaces: Vec<NamespaceRecord>,
    pub files: Vec<FileRecord>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardRecord {
    pub index: u32,
    pub count: u32,
}

impl Manifest {
    /// `manifest.json`, or `manifest-<i>-of-<n>.json` for one shard: shards
    /// share a run folder and never write the same file.
    pub fn file_name(shard: Option<ShardRecord>) -> String {
        match shard {
            None => MANIFEST_FILE.to_string(),
            Some(s) => format!("manifest-{}-of-{}.json", s.index, s.count),
        }
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::sink::write_file_atomically(&run_dir.join(Manifest::file_name(self.shard)), &json)
    }

    pub fn read_file(path: &Path) -> std::io::Result<Manifest> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// The shard a `manifest-<i>-of-<n>.json` name belongs to (the inverse of `file_name`).
    pub fn shard_of(file_name: &str) -> Option<ShardRecord> {
        let (index, count) = file_name
            .strip_prefix("manifest-")?
            .strip_suffix(".json")?
            .split_once("-of-")?;
        Some(ShardRecord {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        })
    }

    /// Whether a file name is a run record: `manifest.json` or a shard's.
    pub fn is_record_name(file_name: &str) -> bool {
        file_name == MANIFEST_FILE || Manifest::shard_of(file_name).is_some()
    }

    /// The run records in a run folder: `manifest.json` and shard manifests.
    pub fn files_in(run_dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(Manifest::is_record_name)
            })
            .collect();
        found.sort();
        found
    }

    pub fn read(run_dir: &Path) -> std::io::Result<Manifest> {
        Manifest::read_file(&run_dir.join(MANIFEST_FILE))
    }
}
