//! One run: discovery feeds targets, at most `--concurrency` log streams run
//! at once (the rest wait their turn), each target starts from its
//! checkpoint, outcomes are collected into the manifest (written last) and
//! the checkpoints into `state.json`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiClient, RetryPolicy};
use crate::cli::Config;
use crate::connect::Connection;
use crate::discover::{Discovered, Discovery, Instance, NamespaceListing, Target};
use crate::error::{Error, Result};
use crate::manifest::{Counts, FileRecord, FileStatus, Manifest, NamespaceRecord, SelectionRecord};
use crate::progress::{Progress, RunSummary};
use crate::retention::{self, Retention};
use crate::scan::Mark;
use crate::select::OwnPod;
use crate::sink::{self, OutputLock};
use crate::state::{Checkpoint, Journal, State, StateFiles};
use crate::stream::{self, Outcome, StreamSettings};

/// What a finished run reports to `main`.
#[derive(Debug)]
pub struct RunReport {
    /// The exit code the manifest records (0 or 3; 1 comes with `fatal`).
    pub exit_code: u8,
    /// The error that stopped the run early, if any (already in the manifest):
    /// main reports it and exits 1.
    pub fatal: Option<Error>,
}

pub const RUNS_DIR: &str = "runs";
const LOCK_FILE: &str = ".lock";

/// A run's folder name: its UTC start time, e.g. 20261122T030000Z.
pub fn default_run_id(started: DateTime<Utc>) -> String {
    started.format("%Y%m%dT%H%M%SZ").to_string()
}

/// How one target is exported, decided from the checkpoints.
#[derive(Debug)]
enum Plan {
    Export {
        resume_from: Option<Mark>,
    },
    /// A terminated instance an earlier run read to its end.
    AlreadyDone,
}

pub async fn run(config: Config, conn: Connection) -> Result<RunReport> {
    if config.dry_run {
        return dry_run(config, conn).await;
    }
    let started_at = Utc::now();
    let run_id = config
        .run_id
        .clone()
        .unwrap_or_else(|| default_run_id(started_at));
    sink::create_private_dir(&config.output).map_err(|e| Error::from_write(&config.output, &e))?;
    let shard = config.selection.shard;
    if shard.is_some() && config.run_id.is_none() {
        tracing::warn!(
            "sharded run without --run-id: each shard names its folder by its own start time; set KLE_RUN_ID the same for all shards (the manifests use the Job's name)"
        );
    }
    let lock_path = config.output.join(format!(
        "{LOCK_FILE}{}",
        shard.map(|s| s.suffix()).unwrap_or_default()
    ));
    let _lock = match OutputLock::try_acquire(&lock_path) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(Error::Busy {
                path: config.output.clone(),
            });
        }
        Err(e) => return Err(Error::from_write(&lock_path, &e)),
    };
    let (run_id, run_dir) = prepare_run_dir(&config.output, &run_id, shard.is_some())?;
    remove_leftover_temp_files(&config.output.join(RUNS_DIR), &run_dir);
    tracing::info!(run_id, server = %conn.server, connection = %conn.source, "export started");
    let progress = Progress::new(&config);

    let state_files = StateFiles::for_shard(shard);
    let incremental = config.incremental();
    if !incremental {
        tracing::info!(
            "--tail/--limit-bytes export a slice of each log: checkpoints are neither used nor moved"
        );
    }
    let mut state = load_state(&config);
    let journal = if incremental {
        Some(Arc::new(
            Journal::open(&config.output, &state_files)
                .map_err(|e| Error::from_write(&config.output, &e))?,
        ))
    } else {
        None
    };
    // --full plans from nothing but still records where this run got to.
    let nothing = State::default();
    let planning = if config.full { &nothing } else { &state };

    let shutdown = Shutdown::start(config.deadline, config.shutdown_grace);
    let (api, discovery) = discovery_for(&config, &conn);
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
        abort: shutdown.abort.clone(),
    });
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut streams: JoinSet<(Outcome, Option<Checkpoint>)> = JoinSet::new();
    let mut collected = Collected::default();

    loop {
        let found = tokio::select! {
            biased;
            _ = shutdown.stop_starting.cancelled() => break,
            found = rx.recv() => found,
        };
        let Some(found) = found else { break };
        progress.discovered(&found, rx.len());
        let target = match found {
            Discovered::Namespace(listing) => {
                collected.namespaces.push(listing);
                continue;
            }
            Discovered::Target(target) => target,
        };
        collected.seen_pods.insert(target.pod.uid.clone());
        if collected.fatal.is_some() {
            continue; // stop starting streams; discovery drains into nothing
        }
        let resume_from = match plan(planning, &target, &mut collected) {
            Plan::AlreadyDone => {
                let record = stream::record_for(
                    &target,
                    FileStatus::Skipped,
                    Some("previous instance already exported to its end by an earlier run".into()),
                );
                progress.finished(&record);
                collected.files.push(record);
                continue;
            }
            Plan::Export { resume_from } => resume_from,
        };
        // Wait for a free slot: never an error for "too many pods".
        let slot = tokio::select! {
            biased;
            _ = shutdown.stop_starting.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let settings = settings.clone();
        let progress = progress.clone();
        let journal = journal.clone();
        streams.spawn(async move {
            let outcome = stream::export_target(&settings, &target, resume_from).await;
            progress.finished(&outcome.record);
            drop(slot);
            let checkpoint = journal.and_then(|journal| {
                let cp = checkpoint_of(&target, &outcome)?;
                // Right after the file's rename: a run killed now still knows it wrote it.
                if let Err(e) = journal.append(&cp) {
                    tracing::warn!("cannot append to {}: {e}", journal.path().display());
                }
                Some(cp)
            });
            (outcome, checkpoint)
        });
        while let Some(done) = streams.try_join_next() {
            collected.add(done);
        }
    }
    drop(rx); // discovery stops at its next send
    while let Some(done) = streams.join_next().await {
        collected.add(done);
    }
    let stopped = shutdown.stop_starting.is_cancelled();
    match discovery_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if !stopped => collected.set_fatal(e),
        Ok(Err(_)) => {}
        Err(e) => collected.set_fatal(Error::Internal(format!("discovery task failed: {e}"))),
    }
    if stopped {
        collected.errors.push(format!(
            "the run was stopped ({}) before every container was exported; the next run continues from the checkpoints",
            shutdown.reason()
        ));
    }

    sync_folders(&run_dir, &collected.files).await;

    if incremental {
        for cp in collected.checkpoints.drain(..) {
            state.put(cp);
        }
        for key in &collected.dead_instances {
            state.checkpoints.remove(key);
        }
        let listed: HashSet<String> = collected
            .namespaces
            .iter()
            .filter(|n| n.error.is_none())
            .map(|n| n.name.clone())
            .collect();
        let ttl = chrono::Duration::from_std(config.state_ttl).unwrap_or(chrono::Duration::days(7));
        let expired = state.expire(&collected.seen_pods, &listed, Utc::now(), ttl);
        if expired > 0 {
            tracing::info!(
                expired,
                "forgot the checkpoints of pods gone for longer than --state-ttl"
            );
        }
        let output = config.output.clone();
        let saved = tokio::task::spawn_blocking(move || state.save(&output, &state_files)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => collected.set_fatal(Error::from_write(
                config.output.join(crate::state::STATE_FILE),
                &e,
            )),
            Err(e) => collected.set_fatal(Error::Internal(format!("saving state failed: {e}"))),
        }
    }

    collected.files.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container, a.instance).cmp(&(
            &b.namespace,
            &b.pod,
            &b.container,
            b.instance,
        ))
    });
    let counts = Counts::of(&collected.files);
    let mut errors: Vec<String> = collected
        .namespaces
        .iter()
        .filter_map(|n| {
            n.error
                .as_ref()
                .map(|e| format!("namespace {}: {e}", n.name))
        })
        .collect();
    let some_failed = counts.failed > 0 || counts.partial > 0 || !errors.is_empty() || stopped;
    errors.append(&mut collected.errors);
    if let Some(fatal) = &collected.fatal {
        errors.push(fatal.to_string());
    }
    let exit_code = if collected.fatal.is_some() {
        1
    } else if some_failed {
        3
    } else {
        0
    };
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
        shard: shard.map(|s| crate::manifest::ShardRecord {
            index: s.index,
            count: s.count,
        }),
        errors,
        gaps: std::mem::take(&mut collected.gaps),
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
        files: std::mem::take(&mut collected.files),
    };
    let manifest_dir = run_dir.clone();
    match tokio::task::spawn_blocking(move || manifest.write(&manifest_dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => collected.set_fatal(Error::from_write(
            run_dir.join(crate::manifest::MANIFEST_FILE),
            &e,
        )),
        Err(e) => tracing::error!("could not write the manifest: {e}"),
    }

    // One shard (the first) prunes old runs, so shards never race on deletes.
    if collected.fatal.is_none() && shard.is_none_or(|s| s.index == 0) {
        let policy = Retention {
            keep_runs: config.keep_runs,
            keep_days: config.keep_days,
        };
        let runs_dir = config.output.join(RUNS_DIR);
        let current = run_dir.clone();
        match tokio::task::spawn_blocking(move || {
            retention::apply(&runs_dir, &current, policy, Utc::now())
        })
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("retention could not delete old runs: {e}"),
            Err(e) => tracing::warn!("retention failed: {e}"),
        }
    }

    progress.finish(&RunSummary {
        run_id: &run_id,
        run_dir: &run_dir,
        counts: &counts,
        exit_code,
    });
    Ok(RunReport {
        exit_code,
        fatal: collected.fatal,
    })
}

/// The checkpoints of earlier runs: only a whole-log run (no --tail or
/// --limit-bytes) starts from them or moves them.
fn load_state(config: &Config) -> State {
    if config.incremental() {
        State::load(
            &config.output,
            &StateFiles::for_shard(config.selection.shard),
        )
    } else {
        State::default()
    }
}

/// The API client of a run and the discovery that lists its targets.
fn discovery_for(config: &Config, conn: &Connection) -> (ApiClient, Discovery) {
    let api = ApiClient::with_list_rate(
        conn.clone(),
        RetryPolicy::new(config.max_attempts),
        config.list_qps,
        config.list_burst,
    );
    let discovery = Discovery {
        api: api.clone(),
        selection: Arc::new(config.selection.clone()),
        own_pod: OwnPod::detect(conn.own_namespace.clone()),
    };
    (api, discovery)
}

/// Decide where a target starts. Also notes instances the API no longer
/// shows whose checkpoints say lines are missing (the container restarted
/// more than once between runs): those are gaps, recorded, not hidden.
fn plan(state: &State, target: &Target, collected: &mut Collected) -> Plan {
    let Some(id) = target.container_id.as_deref() else {
        return Plan::Export { resume_from: None };
    };
    if target.instance == Instance::Current {
        let known: Vec<&str> = [Some(id), target.other_instance_id.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for lost in state.other_instances(&target.pod.uid, &target.container, &known) {
            if !lost.finished {
                collected.gaps.push(format!(
                    "{}/{}/{}: instance {} was exported up to {}; the API no longer serves it, so its later lines are lost",
                    lost.namespace, lost.pod, lost.container, lost.container_id, lost.last_timestamp
                ));
            }
            collected.dead_instances.push(Checkpoint::key(
                &lost.pod_uid,
                &lost.container,
                &lost.container_id,
            ));
        }
    }
    match state.get(&target.pod.uid, &target.container, id) {
        Some(cp) if cp.finished && target.instance == Instance::Previous => Plan::AlreadyDone,
        Some(cp) => Plan::Export {
            resume_from: cp.mark(),
        },
        None => Plan::Export { resume_from: None },
    }
}

/// The checkpoint to keep after a target was exported (None: keep the old one).
fn checkpoint_of(target: &Target, outcome: &Outcome) -> Option<Checkpoint> {
    let mark = outcome.mark?;
    let container_id = target.container_id.clone()?;
    if outcome.fatal.is_some()
        || !matches!(
            outcome.record.status,
            FileStatus::Complete | FileStatus::Partial
        )
    {
        return None;
    }
    Some(Checkpoint {
        namespace: target.pod.namespace.clone(),
        pod: target.pod.name.clone(),
        pod_uid: target.pod.uid.clone(),
        container: target.container.clone(),
        container_id,
        last_timestamp: mark.time.to_rfc3339(),
        lines_at_timestamp: mark.lines_at_time,
        finished: target.instance == Instance::Previous
            && outcome.record.status == FileStatus::Complete,
        last_seen: Utc::now(),
    })
}

#[derive(Default)]
struct Collected {
    files: Vec<FileRecord>,
    namespaces: Vec<NamespaceListing>,
    checkpoints: Vec<Checkpoint>,
    seen_pods: HashSet<String>,
    dead_instances: Vec<String>,
    gaps: Vec<String>,
    errors: Vec<String>,
    fatal: Option<Error>,
}

impl Collected {
    fn add(
        &mut self,
        joined: std::result::Result<(Outcome, Option<Checkpoint>), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((outcome, checkpoint)) => {
                log_outcome(&outcome.record);
                if let Some(fatal) = outcome.fatal {
                    self.set_fatal(fatal);
                }
                self.checkpoints.extend(checkpoint);
                self.files.push(outcome.record);
            }
            Err(e) => self.set_fatal(Error::Internal(format!("a log stream task failed: {e}"))),
        }
    }

    fn set_fatal(&mut self, err: Error) {
        // Not logged here: main prints it once, as the run's last line.
        if self.fatal.is_none() {
            self.fatal = Some(err);
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

/// SIGTERM/SIGINT or `--deadline`: stop starting streams at once, give open
/// ones `grace` to finish, then close them (they keep what they have).
struct Shutdown {
    stop_starting: CancellationToken,
    abort: CancellationToken,
    reason: Arc<std::sync::OnceLock<String>>,
}

impl Shutdown {
    fn start(deadline: Option<Duration>, grace: Duration) -> Shutdown {
        let stop_starting = CancellationToken::new();
        let abort = CancellationToken::new();
        let reason = Arc::new(std::sync::OnceLock::new());
        let (stop, abort2, why) = (stop_starting.clone(), abort.clone(), reason.clone());
        tokio::spawn(async move {
            let deadline_passed = async {
                match deadline {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            let text = tokio::select! {
                signal = termination_signal() => signal,
                _ = deadline_passed => "--deadline reached".to_string(),
            };
            tracing::warn!(
                "{text}: starting no more streams; open streams get {}s to finish",
                grace.as_secs()
            );
            let _ = why.set(text);
            stop.cancel();
            tokio::time::sleep(grace).await;
            abort2.cancel();
        });
        Shutdown {
            stop_starting,
            abort,
            reason,
        }
    }

    fn reason(&self) -> String {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| "stopped".into())
    }
}

async fn termination_signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM received".to_string(),
        _ = tokio::signal::ctrl_c() => "SIGINT received".to_string(),
    }
}

/// Renames are durable only once their folders are synced.
async fn sync_folders(run_dir: &Path, files: &[FileRecord]) {
    let dirs: BTreeSet<PathBuf> = files
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
}

/// Create `OUTPUT/runs/RUN_ID` (0700) and prove it is writable before any
/// request is made. A run never writes into another run's folder (its files
/// would replace that run's files of the same name): a taken id gets a
/// suffix, `-2`, `-3`... Shards share their run's folder on purpose.
fn prepare_run_dir(output: &Path, run_id: &str, sharded: bool) -> Result<(String, PathBuf)> {
    let runs = output.join(RUNS_DIR);
    let mut id = run_id.to_string();
    let mut n = 1;
    while !sharded && folder_in_use(&runs.join(&id)) {
        n += 1;
        id = format!("{run_id}-{n}");
    }
    if id != run_id {
        tracing::warn!("runs/{run_id} already holds a run; this run writes to runs/{id}");
    }
    let run_dir = runs.join(&id);
    sink::create_private_dir(&run_dir).map_err(|e| Error::from_write(&run_dir, &e))?;
    let probe = run_dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::from_write(&run_dir, &e))?;
    let _ = std::fs::remove_file(&probe);
    Ok((id, run_dir))
}

fn folder_in_use(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// A run that was killed leaves hidden `.*.tmp` files (never a truncated
/// `.log.gz`); remove them from runs that have no manifest.
fn remove_leftover_temp_files(runs_dir: &Path, current: &Path) {
    let Ok(runs) = std::fs::read_dir(runs_dir) else {
        return;
    };
    for run in runs.flatten() {
        let run_path = run.path();
        if run_path == current || !Manifest::files_in(&run_path).is_empty() {
            continue;
        }
        let pods = std::fs::read_dir(&run_path)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten());
        for pod in pods {
            for file in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(file.path());
                }
            }
        }
    }
}

/// `--dry-run`: list and select exactly as a run would, print the plan, write nothing.
async fn dry_run(config: Config, conn: Connection) -> Result<RunReport> {
    let state = if config.full {
        State::default()
    } else {
        load_state(&config)
    };
    let (_, discovery) = discovery_for(&config, &conn);
    let (tx, mut rx) = mpsc::channel::<Discovered>(4096);
    let discovery_task = tokio::spawn(discovery.run(tx));
    let mut collected = Collected::default();
    let (mut containers, mut previous, mut done) = (0u64, 0u64, 0u64);
    let mut pods = HashSet::new();
    while let Some(found) = rx.recv().await {
        match found {
            Discovered::Namespace(listing) => {
                if let Some(e) = &listing.error {
                    println!("namespace {}: cannot list pods: {e}", listing.name);
                }
                collected.namespaces.push(listing);
            }
            Discovered::Target(target) => {
                pods.insert(target.pod.uid.clone());
                let what = match plan(&state, &target, &mut collected) {
                    Plan::AlreadyDone => {
                        done += 1;
                        "skip (already exported)".to_string()
                    }
                    Plan::Export {
                        resume_from: Some(m),
                    } => format!("from {}", m.time.to_rfc3339()),
                    Plan::Export { resume_from: None } => "whole log".to_string(),
                };
                match target.instance {
                    Instance::Current => containers += 1,
                    Instance::Previous => previous += 1,
                }
                println!("{}\t{what}", stream::relative_path(&target));
            }
        }
    }
    discovery_task
        .await
        .map_err(|e| Error::Internal(format!("discovery task failed: {e}")))??;
    for gap in &collected.gaps {
        println!("gap: {gap}");
    }
    println!(
        "dry run: {} namespaces, {} pods, {} containers, {} previous instances ({} already exported); nothing written",
        collected.namespaces.len(),
        pods.len(),
        containers,
        previous,
        done
    );
    let failed = collected.namespaces.iter().any(|n| n.error.is_some());
    Ok(RunReport {
        exit_code: if failed { 3 } else { 0 },
        fatal: None,
    })
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
