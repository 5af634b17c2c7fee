//! `--keep-runs N` / `--keep-days D`: delete the oldest run folders after a
//! run. Only folders directly under `OUTPUT/runs/`, never the current run.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::manifest::Manifest;

#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub keep_runs: Option<u32>,
    pub keep_days: Option<u32>,
}

/// Delete what the policy says; returns the folders deleted.
pub fn apply(
    runs_dir: &Path,
    current: &Path,
    policy: Retention,
    now: DateTime<Utc>,
) -> std::io::Result<Vec<PathBuf>> {
    if policy.keep_runs.is_none() && policy.keep_days.is_none() {
        return Ok(Vec::new());
    }
    let mut runs: Vec<(DateTime<Utc>, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(runs_dir)? {
        let entry = entry?;
        // Symlinks are not ours to follow: file_type() does not follow them.
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        runs.push((started_at(&path), path));
    }
    // Newest first; the name breaks ties (run ids sort by time).
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut deleted = Vec::new();
    let mut kept = 0u32;
    for (started, path) in runs {
        let is_current = path == current;
        let too_many = policy.keep_runs.is_some_and(|n| kept >= n);
        let too_old = policy
            .keep_days
            .is_some_and(|d| now - started > chrono::Duration::days(d as i64));
        if is_current || !(too_many || too_old) {
            kept += 1;
            continue;
        }
        std::fs::remove_dir_all(&path)?;
        tracing::info!(path = %path.display(), "deleted old run (retention)");
        deleted.push(path);
    }
    Ok(deleted)
}

/// When a run started: its manifest says; a run without one (killed) falls
/// back to the folder's modification time.
fn started_at(run_dir: &Path) -> DateTime<Utc> {
    // manifest.json, or any shard's manifest of a sharded run.
    if let Some(manifest) = Manifest::files_in(run_dir)
        .iter()
        .find_map(|p| Manifest::read_file(p).ok())
    {
        return manifest.started_at;
    }
    std::fs::metadata(run_dir)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_runs_and_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for name in [
            "20260101T000000Z",
            "20260102T000000Z",
            "20260103T000000Z",
            "20260104T000000Z",
        ] {
            std::fs::create_dir_all(runs.join(name)).unwrap();
            let t = chrono::NaiveDateTime::parse_from_str(name, "%Y%m%dT%H%M%SZ")
                .unwrap()
                .and_utc();
            let f = std::fs::File::open(runs.join(name)).unwrap();
            f.set_modified(t.into()).unwrap();
        }
        std::fs::write(dir.path().join("state.json"), "{}").unwrap();
        let current = runs.join("20260104T000000Z");
        let policy = Retention {
            keep_runs: Some(2),
            keep_days: None,
        };
        let deleted = apply(&runs, &current, policy, Utc::now()).unwrap();
        assert_eq!(deleted.len(), 2);
        let mut left: Vec<_> = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["20260103T000000Z", "20260104T000000Z"]);
        assert!(
            dir.path().join("state.json").exists(),
            "nothing outside runs/ is touched"
        );
    }

    #[test]
    fn keep_days_never_deletes_the_current_run() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(runs.join("old")).unwrap();
        let policy = Retention {
            keep_runs: None,
            keep_days: Some(1),
        };
        let later = Utc::now() + chrono::Duration::days(10);
        assert!(
            apply(&runs, &runs.join("old"), policy, later)
                .unwrap()
                .is_empty()
        );
    }
}
