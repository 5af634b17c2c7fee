//! Test helpers: a fake cluster with a kubeconfig, a command builder for the
//! real binary, and readers for what a run wrote.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fake_apiserver::{
    Cluster, FakeApiServer, LogQuery, LogSpec, Options, Rule, full_access_rules, render_log,
};
use tempfile::TempDir;

pub const USER: &str = "tester";
pub const TOKEN: &str = "tok-tester-9f8e7d";

/// A fake cluster, a temp folder, and a kubeconfig for a user with full read access.
pub struct Harness {
    pub server: FakeApiServer,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

impl Harness {
    pub fn new(cluster: Cluster) -> Harness {
        Harness::with_options(cluster, Options::default())
    }

    pub fn with_options(cluster: Cluster, options: Options) -> Harness {
        let server = FakeApiServer::start(cluster, options);
        let dir = tempfile::tempdir().expect("temp dir");
        server.add_user(USER, TOKEN, full_access_rules());
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, USER);
        Harness {
            server,
            dir,
            kubeconfig,
        }
    }

    pub fn add_user(&self, name: &str, rules: Vec<Rule>) -> PathBuf {
        self.server
            .add_user(name, &format!("tok-{name}-1234"), rules);
        let path = self.dir.path().join(format!("kubeconfig-{name}"));
        self.server.write_kubeconfig(&path, name);
        path
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// `kube-log-exporter --kubeconfig K --output OUT`.
    pub fn export(&self) -> Cmd {
        let mut cmd = exporter();
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--output")
            .arg(self.out());
        cmd
    }

    pub fn only_run(&self) -> PathBuf {
        let runs = run_dirs(&self.out());
        assert_eq!(
            runs.len(),
            1,
            "expected exactly one run folder, found {runs:?}"
        );
        runs.into_iter().next().unwrap()
    }
}

/// The real binary, with an environment that cannot leak the developer's cluster in.
pub fn exporter() -> Cmd {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kube-log-exporter"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("KLE_") || key == "KUBECONFIG" || key.starts_with("KUBERNETES_") {
            command.env_remove(&key);
        }
    }
    command.env("HOME", "/nonexistent-home-for-tests");
    command.env("NO_COLOR", "1");
    command.stdin(Stdio::null());
    Cmd { command }
}

pub struct Cmd {
    pub command: Command,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    pub fn arg(&mut self, arg: impl AsRef<std::ffi::OsStr>) -> &mut Cmd {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(&mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> &mut Cmd {
        self.command.env(key, value);
        self
    }

    pub fn run(&mut self) -> Output {
        let out = self.command.output().expect("run kube-log-exporter");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and insist on an exit code, showing stderr when it differs.
    pub fn expect_code(&mut self, code: i32) -> Output {
        let out = self.run();
        assert_eq!(
            out.code, code,
            "exit code; stderr:\n{}\nstdout:\n{}",
            out.stderr, out.stdout
        );
        out
    }
}

pub fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs
}

pub fn manifest(run_dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(run_dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_slice(&bytes).expect("manifest.json is JSON")
}

/// The manifest entry of one container instance.
pub fn entry<'a>(
    manifest: &'a serde_json::Value,
    ns: &str,
    pod: &str,
    container: &str,
    instance: &str,
) -> &'a serde_json::Value {
    manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| {
            f["namespace"] == ns
                && f["pod"] == pod
                && f["container"] == container
                && f["instance"] == instance
        })
        .unwrap_or_else(|| panic!("no manifest entry for {ns}/{pod}/{container} ({instance})"))
}

pub fn gunzip(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
    out
}

/// What the API serves for a whole log with timestamps (what a file must hold).
pub fn served(spec: &LogSpec) -> Vec<u8> {
    render_log(
        spec,
        &LogQuery {
            timestamps: true,
            ..LogQuery::default()
        },
    )
}

/// Byte equality with a readable failure (first differing offset, not a 20 MiB dump).
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let at = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(40).min(b.len())..(at + 80).min(b.len())])
            .into_owned()
    };
    panic!(
        "{what}: {} bytes written, {} expected; first difference at byte {at}\n  written:  {:?}\n  expected: {:?}",
        actual.len(),
        expected.len(),
        show(actual),
        show(expected)
    );
}

/// Every file (relative path) under a folder, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
