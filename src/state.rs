//! Checkpoints between runs (`OUTPUT/state.json`): for every container
//! instance, the timestamp of the last line written and how many lines
//! carried exactly that timestamp. The next run asks from there and drops
//! what it already has, so the union of all runs holds every line once.
//!
//! `state.json` is rewritten atomically at the end of a run. During a run,
//! each committed file appends its checkpoint to `state.journal` right after
//! the file's rename, so a run killed part-way (SIGKILL, node loss) leaves
//! checkpoints that match exactly the files it completed. Loading replays
//! the journal over the snapshot.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::scan::{LogTime, Mark};

pub const STATE_FILE: &str = "state.json";
pub const JOURNAL_FILE: &str = "state.journal";
const FORMAT_VERSION: u32 = 1;

/// Where one container instance was written up to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
    /// Timestamp of the last line written, as RFC 3339 with nanoseconds.
    pub last_timestamp: String,
    /// Lines written that carried exactly `last_timestamp`.
    pub lines_at_timestamp: u64,
    /// The instance had terminated and was read to its end: it can never grow.
    #[serde(default)]
    pub finished: bool,
    /// Last time a run saw the pod in its listing (for expiry).
    pub last_seen: DateTime<Utc>,
}

impl Checkpoint {
    pub fn key(pod_uid: &str, container: &str, container_id: &str) -> String {
        format!("{pod_uid}/{container}/{container_id}")
    }

    pub fn mark(&self) -> Option<Mark> {
        LogTime::parse(self.last_timestamp.as_bytes()).map(|time| Mark {
            time,
            lines_at_time: self.lines_at_timestamp,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    pub format_version: u32,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub checkpoints: BTreeMap<String, Checkpoint>,
}

impl State {
    /// Load snapshot + journal. A missing state is a first run; an unreadable
    /// one means a full export, with a warning, never a crash.
    pub fn load(dir: &Path, names: &StateFiles) -> State {
        let path = dir.join(&names.state);
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(
                        "{} is unreadable ({e}); exporting everything again this run (lines may repeat across runs)",
                        path.display()
                    );
                    State::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {} ({e}); exporting everything again this run",
                    path.display()
                );
                State::default()
            }
        };
        let journal = dir.join(&names.journal);
        if let Ok(file) = File::open(&journal) {
            let mut replayed = 0;
            for line in BufReader::new(file).lines() {
                // A run killed mid-append leaves at most one torn last line: skip it.
                let Ok(line) = line else { break };
                if let Ok(cp) = serde_json::from_str::<Checkpoint>(&line) {
                    let key = Checkpoint::key(&cp.pod_uid, &cp.container, &cp.container_id);
                    state.checkpoints.insert(key, cp);
                    replayed += 1;
                }
            }
            if replayed > 0 {
                tracing::info!(
                    replayed,
                    "recovered checkpoints of an interrupted run from {}",
                    journal.display()
                );
            }
        }
        state.format_version = FORMAT_VERSION;
        state
    }

    pub fn get(&self, pod_uid: &str, container: &str, container_id: &str) -> Option<&Checkpoint> {
        self.checkpoints
            .get(&Checkpoint::key(pod_uid, container, container_id))
    }

    /// Checkpoints of a pod container other than the given instance ids
    /// (instances the API no longer shows).
    pub fn other_instances<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        known_ids: &'a [&'a str],
    ) -> impl Iterator<Item = &'a Checkpoint> + 'a {
        let prefix = format!("{pod_uid}/{container}/");
        self.checkpoints
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, cp)| cp)
            .filter(move |cp| !known_ids.contains(&cp.container_id.as_str()))
    }

    pub fn put(&mut self, cp: Checkpoint) {
        let key = Checkpoint::key(&cp.pod_uid, &cp.container, &cp.container_id);
        self.checkpoints.insert(key, cp);
    }

    /// Refresh `last_seen` of every checkpoint of the pods listed this run,
    /// and drop the checkpoints of pods gone for longer than `ttl` from
    /// namespaces that were listed (a namespace not listed says nothing).
    pub fn expire(
        &mut self,
        seen_pods: &HashSet<String>,
        listed_namespaces: &HashSet<String>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> usize {
        let before = self.checkpoints.len();
        self.checkpoints.retain(|_, cp| {
            if seen_pods.contains(&cp.pod_uid) {
                cp.last_seen = now;
                true
            } else {
                !listed_namespaces.contains(&cp.namespace) || now - cp.last_seen <= ttl
            }
        });
        before - self.checkpoints.len()
    }

    /// Write the snapshot atomically, then drop the journal it supersedes.
    pub fn save(&mut self, dir: &Path, names: &StateFiles) -> std::io::Result<()> {
        self.updated_at = Some(Utc::now());
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::sink::write_file_atomically(&dir.join(&names.state), &json)?;
        match std::fs::remove_file(dir.join(&names.journal)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// File names of one exporter's state (shards each have their own).
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub state: String,
    pub journal: String,
}

impl StateFiles {
    /// Each shard keeps its own checkpoints: shards never write the same file.
    pub fn for_shard(shard: Option<crate::select::Shard>) -> StateFiles {
        match shard {
            None => StateFiles::default(),
            Some(s) => StateFiles {
                state: format!("state{}.json", s.suffix()),
                journal: format!("state{}.journal", s.suffix()),
            },
        }
    }
}

impl Default for StateFiles {
    fn default() -> Self {
        StateFiles {
            state: STATE_FILE.into(),
            journal: JOURNAL_FILE.into(),
        }
    }
}

/// Appends checkpoints as files are committed. One `write` per line with
/// O_APPEND: a SIGKILL can tear at most the line being written.
pub struct Journal {
    file: Mutex<File>,
    path: PathBuf,
}

impl Journal {
    pub fn open(dir: &Path, names: &StateFiles) -> std::io::Result<Journal> {
        let path = dir.join(&names.journal);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Journal {
            file: Mutex::new(file),
            path,
        })
    }

    pub fn append(&self, cp: &Checkpoint) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(cp).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // A poisoned lock only means another append panicked; the file is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(uid: &str, id: &str, ts: &str, n: u64) -> Checkpoint {
        Checkpoint {
            namespace: "ns".into(),
            pod: "p".into(),
            pod_uid: uid.into(),
            container: "c".into(),
            container_id: id.into(),
            last_timestamp: ts.into(),
            lines_at_timestamp: n,
            finished: false,
            last_seen: Utc::now(),
        }
    }

    #[test]
    fn snapshot_plus_journal_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let names = StateFiles::default();
        let mut state = State::load(dir.path(), &names);
        assert!(state.checkpoints.is_empty());
        state.put(cp("u1", "a", "2026-11-22T03:00:00.5Z", 2));
        state.save(dir.path(), &names).unwrap();

        let journal = Journal::open(dir.path(), &names).unwrap();
        journal
            .append(&cp("u1", "a", "2026-11-22T03:00:01Z", 1))
            .unwrap();
        journal
            .append(&cp("u2", "b", "2026-11-22T03:00:02Z", 3))
            .unwrap();
        drop(journal);
        // A torn last line, as a SIGKILL mid-append would leave.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        f.write_all(b"{\"namespace\":\"ns\",\"po").unwrap();

        let state = State::load(dir.path(), &names);
        assert_eq!(state.checkpoints.len(), 2);
        let a = state.get("u1", "c", "a").unwrap();
        assert_eq!(a.last_timestamp, "2026-11-22T03:00:01Z");
        assert_eq!(a.mark().unwrap().lines_at_time, 1);
    }

    #[test]
    fn corrupt_state_means_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(
            State::load(dir.path(), &StateFiles::default())
                .checkpoints
                .is_empty()
        );
    }

    #[test]
    fn expiry_keeps_seen_pods_and_unlisted_namespaces() {
        let mut state = State::default();
        let old = Utc::now() - chrono::Duration::days(30);
        for (uid, ns) in [("seen", "ns"), ("gone", "ns"), ("elsewhere", "other")] {
            let mut c = cp(uid, "x", "2026-11-22T03:00:00Z", 1);
            c.namespace = ns.into();
            c.last_seen = old;
            state.put(c);
        }
        let seen: HashSet<String> = ["seen".to_string()].into();
        let listed: HashSet<String> = ["ns".to_string()].into();
        let dropped = state.expire(&seen, &listed, Utc::now(), chrono::Duration::days(7));
        assert_eq!(dropped, 1);
        assert!(state.get("gone", "c", "x").is_none());
        assert!(state.get("seen", "c", "x").is_some());
        assert!(state.get("elsewhere", "c", "x").is_some());
    }

    #[test]
    fn other_instances_finds_lost_ones() {
        let mut state = State::default();
        state.put(cp("u", "old", "2026-11-22T03:00:00Z", 1));
        state.put(cp("u", "prev", "2026-11-22T03:00:00Z", 1));
        state.put(cp("u2", "zzz", "2026-11-22T03:00:00Z", 1));
        let known = ["prev", "cur"];
        let others: Vec<_> = state
            .other_instances("u", "c", &known)
            .map(|c| c.container_id.clone())
            .collect();
        assert_eq!(others, ["old"]);
    }
}
