//! Command-line flags (clap derive). Every flag also reads a `KLE_*`
//! environment variable, so a CronJob can configure the exporter either way.
//! `Cli::into_config` validates them into the `Config` the rest of the
//! program uses; nothing below this module sees raw strings.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "kube-log-exporter",
    version,
    about = "Copy the logs of Kubernetes pods into gzip files, run after run, with nothing lost and nothing duplicated.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub export: ExportArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export logs (the default when no subcommand is given).
    Export(Box<ExportArgs>),
    /// Check the connection and every RBAC permission an export needs; print the RBAC to apply.
    Doctor(Box<DoctorArgs>),
    /// Check a run folder's files against its manifest.json (gzip, sha256, sizes, lines).
    Verify(VerifyArgs),
}

/// `doctor`: the export's connection flags and its namespace selection.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,
}

/// `verify`: one run folder.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// A run folder, OUTPUT/runs/<RUN_ID>, holding manifest.json.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub logs: LogArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sharding (Indexed Job)")]
pub struct ShardArgs {
    /// Number of shards the pods are split into (one per Indexed Job completion).
    #[arg(long, env = "KLE_SHARD_COUNT", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub shard_count: Option<u32>,

    /// This exporter's shard, 0..N-1 (default: $JOB_COMPLETION_INDEX, set by an Indexed Job).
    #[arg(long, env = "KLE_SHARD_INDEX", value_name = "I")]
    pub shard_index: Option<u32>,
}

impl ShardArgs {
    pub fn into_shard(self) -> Result<Option<crate::select::Shard>> {
        let Some(count) = self.shard_count else {
            if self.shard_index.is_some() {
                return Err(Error::Usage(
                    "--shard-index needs --shard-count (how many shards there are)".into(),
                ));
            }
            return Ok(None);
        };
        let index = match self.shard_index {
            Some(index) => index,
            None => match std::env::var("JOB_COMPLETION_INDEX") {
                Ok(v) => v.trim().parse().map_err(|_| {
                    Error::Usage(format!("JOB_COMPLETION_INDEX {v:?} is not a shard number"))
                })?,
                Err(_) => {
                    return Err(Error::Usage(
                        "--shard-count is set but this exporter does not know its shard: pass --shard-index or run it in an Indexed Job (JOB_COMPLETION_INDEX)".into(),
                    ));
                }
            },
        };
        if index >= count {
            return Err(Error::Usage(format!(
                "shard index {index} is out of range for {count} shards (0..{})",
                count - 1
            )));
        }
        Ok(Some(crate::select::Shard { index, count }))
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Path of the kubeconfig file (default: $KUBECONFIG, then in-cluster, then ~/.kube/config).
    #[arg(long, env = "KLE_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// kubeconfig context to use (default: its current-context).
    #[arg(long, env = "KLE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,

    /// API server URL. An http:// URL means `kubectl proxy` (no credentials sent);
    /// with a kubeconfig, overrides its server address.
    #[arg(long, env = "KLE_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Folder holding the ServiceAccount's token, ca.crt and namespace (in-cluster mode).
    #[arg(
        long,
        env = "KLE_SERVICE_ACCOUNT_DIR",
        value_name = "DIR",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount"
    )]
    pub service_account_dir: PathBuf,

    /// Do not verify the API server's certificate. Insecure: prints a warning on every run.
    #[arg(long, env = "KLE_INSECURE_SKIP_TLS_VERIFY")]
    pub insecure_skip_tls_verify: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    Init,
    Regular,
    Ephemeral,
}

/// Which namespaces: shared by the export and `doctor`, which checks the
/// permissions of exactly that export.
#[derive(Debug, Clone, Args)]
pub struct NamespaceArgs {
    /// Namespace to export (repeatable or comma-separated). Default: all namespaces.
    #[arg(
        short = 'n',
        long = "namespace",
        env = "KLE_NAMESPACE",
        value_delimiter = ',',
        value_name = "NS"
    )]
    pub namespaces: Vec<String>,

    /// Export every namespace the identity may read (the default when no --namespace is given).
    #[arg(
        short = 'A',
        long,
        env = "KLE_ALL_NAMESPACES",
        conflicts_with = "namespaces"
    )]
    pub all_namespaces: bool,
}

impl NamespaceArgs {
    /// The namespaces named, trimmed; empty means all.
    pub fn names(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Selection")]
pub struct SelectArgs {
    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    /// Leave out namespaces whose whole name matches this regex (repeatable).
    #[arg(
        long,
        env = "KLE_EXCLUDE_NAMESPACE",
        value_delimiter = ',',
        value_name = "REGEX"
    )]
    pub exclude_namespace: Vec<String>,

    /// Only pods whose whole name matches this regex.
    #[arg(long, env = "KLE_POD", value_name = "REGEX")]
    pub pod: Option<String>,

    /// Leave out pods whose whole name matches this regex (repeatable).
    #[arg(
        long,
        env = "KLE_EXCLUDE_POD",
        value_delimiter = ',',
        value_name = "REGEX"
    )]
    pub exclude_pod: Vec<String>,

    /// Label selector, as in kubectl (e.g. app=web,tier!=cache).
    #[arg(short = 'l', long, env = "KLE_SELECTOR", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Field selector, as in kubectl (e.g. spec.nodeName=node-1).
    #[arg(long, env = "KLE_FIELD_SELECTOR", value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Only containers whose whole name matches this regex.
    #[arg(short = 'c', long, env = "KLE_CONTAINER", value_name = "REGEX")]
    pub container: Option<String>,

    /// Leave out containers whose whole name matches this regex (repeatable).
    #[arg(
        long,
        env = "KLE_EXCLUDE_CONTAINER",
        value_delimiter = ',',
        value_name = "REGEX"
    )]
    pub exclude_container: Vec<String>,

    /// Container kinds to export (comma-separated).
    #[arg(
        long,
        env = "KLE_CONTAINER_KINDS",
        value_delimiter = ',',
        default_value = "init,regular,ephemeral"
    )]
    pub container_kinds: Vec<ContainerKind>,

    /// Also export the exporter's own pods (left out by default).
    #[arg(long, env = "KLE_INCLUDE_SELF")]
    pub include_self: bool,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Log range")]
pub struct LogArgs {
    /// Only lines newer than this (e.g. 90m, 2h, 1day).
    #[arg(
        long,
        env = "KLE_SINCE",
        value_name = "DURATION",
        conflicts_with = "since_time"
    )]
    pub since: Option<String>,

    /// Only lines at or after this RFC 3339 time (e.g. 2026-11-22T03:00:00Z).
    #[arg(long, env = "KLE_SINCE_TIME", value_name = "TIME")]
    pub since_time: Option<String>,

    /// Only the last N lines of each container. Default: all lines.
    #[arg(long, env = "KLE_TAIL", value_name = "N")]
    pub tail: Option<u64>,

    /// Stop each container's log after N bytes (as the API counts them).
    #[arg(long, env = "KLE_LIMIT_BYTES", value_name = "N")]
    pub limit_bytes: Option<u64>,

    /// Keep the API's timestamp at the start of each line (use --timestamps=false to strip it;
    /// timestamps are still requested for checkpoints).
    #[arg(long, env = "KLE_TIMESTAMPS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub timestamps: bool,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output folder (a mounted volume or a local folder). Runs go to OUTPUT/runs/<RUN_ID>/.
    #[arg(
        short = 'o',
        long,
        env = "KLE_OUTPUT",
        value_name = "DIR",
        required = true
    )]
    pub output: Option<PathBuf>,

    /// Name of this run's folder (default: UTC start time, e.g. 20261122T030000Z).
    #[arg(long, env = "KLE_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,

    /// Ignore the checkpoints of earlier runs for this run (export everything the API has).
    #[arg(long, env = "KLE_FULL")]
    pub full: bool,

    /// Forget the checkpoints of pods gone for longer than this.
    #[arg(
        long,
        env = "KLE_STATE_TTL",
        default_value = "7days",
        value_name = "DURATION"
    )]
    pub state_ttl: String,

    /// After a run, keep only the newest N run folders.
    #[arg(long, env = "KLE_KEEP_RUNS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_runs: Option<u32>,

    /// After a run, delete run folders older than D days.
    #[arg(long, env = "KLE_KEEP_DAYS", value_name = "D", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,

    /// gzip level, 0 (store) to 9 (smallest). 1 is the measured best trade-off (see README).
    #[arg(long, env = "KLE_COMPRESSION_LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compression_level: u32,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// Log streams open at once; the rest wait their turn.
    #[arg(long, env = "KLE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,

    /// A log stream that sends nothing for this long is treated as cut (and resumed).
    #[arg(
        long,
        env = "KLE_STREAM_IDLE_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub stream_idle_timeout: String,

    /// Stop the run after this long (e.g. 50m): open streams are closed, their files marked
    /// partial, the manifest and checkpoints written, exit code 3. Default: no deadline.
    #[arg(long, env = "KLE_DEADLINE", value_name = "DURATION")]
    pub deadline: Option<String>,

    /// On SIGTERM/SIGINT or the deadline, how long open streams may take to finish
    /// before they are closed. Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(
        long,
        env = "KLE_SHUTDOWN_GRACE",
        default_value = "20s",
        value_name = "DURATION"
    )]
    pub shutdown_grace: String,

    /// List and select as a real run would, print what would be exported, write nothing.
    #[arg(long, env = "KLE_DRY_RUN")]
    pub dry_run: bool,

    /// List requests per second, on average (client-side rate limit, like client-go's QPS).
    #[arg(long, env = "KLE_LIST_QPS", default_value_t = 20.0, value_name = "N")]
    pub list_qps: f64,

    /// List requests allowed in a burst above --list-qps.
    #[arg(long, env = "KLE_LIST_BURST", default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub list_burst: u32,

    /// Attempts for one API request (list page or log stream) before it counts as failed.
    #[arg(long, env = "KLE_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Only when stderr is a terminal and --log-format is text.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Program logs")]
pub struct TelemetryArgs {
    /// Format of the exporter's own logs on stderr (the CronJob uses json).
    #[arg(long, env = "KLE_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,

    /// Level of the exporter's own logs (error, warn, info, debug, trace or a tracing filter).
    #[arg(long, env = "KLE_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// Progress bar on stderr during an export (and a summary table at the end).
    #[arg(long, env = "KLE_PROGRESS", default_value = "auto", global = true)]
    pub progress: ProgressMode,
}

/// How to reach the API server.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub server: Option<String>,
    pub service_account_dir: PathBuf,
    pub insecure_skip_tls_verify: bool,
    pub stream_idle_timeout: Duration,
}

/// Which namespaces, pods and containers to export.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Empty = all namespaces.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<Regex>,
    pub pod: Option<Regex>,
    pub exclude_pods: Vec<Regex>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub container: Option<Regex>,
    pub exclude_containers: Vec<Regex>,
    pub container_kinds: Vec<ContainerKind>,
    pub include_self: bool,
    /// Only this shard's pods (Indexed Job).
    pub shard: Option<crate::select::Shard>,
}

/// What part of each log to ask for.
#[derive(Debug, Clone, Default)]
pub struct LogRange {
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub keep_timestamps: bool,
}

impl LogRange {
    /// No --tail or --limit-bytes: the API's answer is the log from a point
    /// on, so a later request (a resumed stream, the next run) continues it.
    pub fn is_whole_log(&self) -> bool {
        self.tail_lines.is_none() && self.limit_bytes.is_none()
    }
}

/// A validated export run.
#[derive(Debug, Clone)]
pub struct Config {
    pub connect: ConnectConfig,
    pub selection: Selection,
    pub range: LogRange,
    pub output: PathBuf,
    pub run_id: Option<String>,
    pub compression_level: u32,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub list_qps: f64,
    pub list_burst: u32,
    pub full: bool,
    pub state_ttl: Duration,
    pub keep_runs: Option<u32>,
    pub keep_days: Option<u32>,
    pub deadline: Option<Duration>,
    pub shutdown_grace: Duration,
    pub dry_run: bool,
    /// From the global flags (`TelemetryArgs`), which `main_with` copies in.
    pub progress: ProgressMode,
    pub log_format: LogFormat,
}

impl Config {
    /// Checkpoints are used only for whole logs: a --tail or --limit-bytes
    /// run sees a slice, and must neither start from nor move the checkpoints.
    pub fn incremental(&self) -> bool {
        self.range.is_whole_log()
    }
}

impl ExportArgs {
    pub fn into_config(self) -> Result<Config> {
        let output = self.output.output.ok_or_else(|| {
            Error::Usage("--output is required: say where the log files go".into())
        })?;
        let since_seconds = self
            .logs
            .since
            .as_deref()
            .map(|s| parse_duration("--since", s).map(|d| d.as_secs().max(1) as i64))
            .transpose()?;
        let since_time = self
            .logs
            .since_time
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        Error::Usage(format!(
                            "--since-time {s:?} is not an RFC 3339 time ({e}); write it like 2026-11-22T03:00:00Z"
                        ))
                    })
            })
            .transpose()?;
        if let Some(run_id) = &self.output.run_id {
            validate_run_id(run_id)?;
        }
        Ok(Config {
            connect: self.connect.into_config(&self.run.stream_idle_timeout)?,
            selection: crate::cli::Selection {
                shard: self.shard.into_shard()?,
                ..self.select.into_selection()?
            },
            range: LogRange {
                since_seconds,
                since_time,
                tail_lines: self.logs.tail,
                limit_bytes: self.logs.limit_bytes,
                keep_timestamps: self.logs.timestamps,
            },
            output,
            run_id: self.output.run_id,
            compression_level: self.output.compression_level,
            concurrency: self.run.concurrency as usize,
            max_attempts: self.run.max_attempts,
            list_qps: match self.run.list_qps {
                q if q.is_finite() && q > 0.0 => q,
                q => {
                    return Err(Error::Usage(format!(
                        "--list-qps {q} must be a positive number, e.g. 20"
                    )));
                }
            },
            list_burst: self.run.list_burst,
            full: self.output.full,
            state_ttl: parse_duration("--state-ttl", &self.output.state_ttl)?,
            keep_runs: self.output.keep_runs,
            keep_days: self.output.keep_days,
            deadline: self
                .run
                .deadline
                .as_deref()
                .map(|d| parse_duration("--deadline", d))
                .transpose()?,
            shutdown_grace: parse_duration("--shutdown-grace", &self.run.shutdown_grace)?,
            dry_run: self.run.dry_run,
            progress: ProgressMode::Auto,
            log_format: LogFormat::Text,
        })
    }
}

impl ConnectArgs {
    pub fn into_config(self, stream_idle_timeout: &str) -> Result<ConnectConfig> {
        if let Some(server) = &self.server
            && !(server.starts_with("http://") || server.starts_with("https://"))
        {
            return Err(Error::Usage(format!(
                "--server {server:?} is not a URL; write it like https://10.0.0.1:6443 or http://127.0.0.1:8001 (kubectl proxy)"
            )));
        }
        Ok(ConnectConfig {
            kubeconfig: self.kubeconfig,
            context: self.context,
            server: self.server,
            service_account_dir: self.service_account_dir,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            stream_idle_timeout: parse_duration("--stream-idle-timeout", stream_idle_timeout)?,
        })
    }
}

impl SelectArgs {
    pub fn into_selection(self) -> Result<Selection> {
        Ok(Selection {
            namespaces: self.namespaces.names(),
            exclude_namespaces: regexes("--exclude-namespace", &self.exclude_namespace)?,
            pod: self
                .pod
                .as_deref()
                .map(|r| whole_name_regex("--pod", r))
                .transpose()?,
            exclude_pods: regexes("--exclude-pod", &self.exclude_pod)?,
            label_selector: self.selector.filter(|s| !s.trim().is_empty()),
            field_selector: self.field_selector.filter(|s| !s.trim().is_empty()),
            container: self
                .container
                .as_deref()
                .map(|r| whole_name_regex("--container", r))
                .transpose()?,
            exclude_containers: regexes("--exclude-container", &self.exclude_container)?,
            container_kinds: self.container_kinds,
            include_self: self.include_self,
            shard: None,
        })
    }
}

fn regexes(flag: &str, patterns: &[String]) -> Result<Vec<Regex>> {
    patterns
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| whole_name_regex(flag, p))
        .collect()
}

/// Patterns match the whole name, so `web` does not also select `web-canary`.
fn whole_name_regex(flag: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        Error::Usage(format!(
            "{flag} {pattern:?} is not a valid regular expression: {e}"
        ))
    })
}

pub fn parse_duration(flag: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        Error::Usage(format!(
            "{flag} {value:?} is not a duration ({e}); write it like 30s, 90m or 2h"
        ))
    })
}

/// Run ids become folder names: keep them to a safe alphabet.
fn validate_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !run_id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--run-id {run_id:?} cannot be a folder name; use letters, digits, '-', '_' and '.' only"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        let mut full = vec!["kube-log-exporter"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    }

    #[test]
    fn defaults_export_everything_with_timestamps() {
        let cli = parse(&["--output", "/data"]).unwrap();
        let config = cli.export.into_config().unwrap();
        assert!(config.selection.namespaces.is_empty());
        assert_eq!(config.concurrency, 16);
        assert!(config.range.keep_timestamps);
        assert_eq!(
            config.range.tail_lines, None,
            "no hidden tail that drops lines"
        );
        assert_eq!(config.selection.container_kinds.len(), 3);
    }

    #[test]
    fn timestamps_can_be_turned_off() {
        let cli = parse(&["--output", "/d", "--timestamps=false"]).unwrap();
        assert!(!cli.export.into_config().unwrap().range.keep_timestamps);
    }

    #[test]
    fn namespaces_repeat_and_split_on_commas() {
        let cli = parse(&["-o", "/d", "-n", "a,b", "--namespace", "c"]).unwrap();
        assert_eq!(
            cli.export.into_config().unwrap().selection.namespaces,
            ["a", "b", "c"]
        );
    }

    #[test]
    fn patterns_match_whole_names() {
        let cli = parse(&["-o", "/d", "--pod", "web"]).unwrap();
        let pod = cli.export.into_config().unwrap().selection.pod.unwrap();
        assert!(pod.is_match("web"));
        assert!(!pod.is_match("web-canary"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let bad_regex = parse(&["-o", "/d", "--pod", "("])
            .unwrap()
            .export
            .into_config();
        assert!(matches!(bad_regex, Err(Error::Usage(_))));
        let bad_since = parse(&["-o", "/d", "--since", "yesterday"])
            .unwrap()
            .export
            .into_config();
        assert!(matches!(bad_since, Err(Error::Usage(_))));
        let bad_run_id = parse(&["-o", "/d", "--run-id", "../x"])
            .unwrap()
            .export
            .into_config();
        assert!(matches!(bad_run_id, Err(Error::Usage(_))));
        assert!(parse(&["-o", "/d", "--compression-level", "12"]).is_err());
        assert!(parse(&["-o", "/d", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn output_is_required() {
        assert!(parse(&[]).is_err());
    }
}
