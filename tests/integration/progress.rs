//! The progress bar and the run summary: drawn under a pseudo-terminal,
//! absent when stderr is a pipe (the CronJob), one JSON line with
//! `--log-format json`, and the program's own log lines never mixed into
//! the bar.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_apiserver::{Cluster, GenSpec, LogFault};

use crate::util::*;

/// A run never takes longer than this here (it takes about two seconds).
const LIMIT: Duration = Duration::from_secs(60);
/// Text of the bar (and nothing else the program prints).
const BAR: &str = "containers ·";
/// Text of the summary table (and nothing else the program prints).
const TABLE: &str = "run folder";

/// Eight one-container pods; two answer only after a stall, so the bar draws
/// several frames; pod-3 fails (one attempt, HTTP 500), so a WARN line is
/// printed while the bar is up.
fn slow_cluster() -> Harness {
    let h = Harness::new(Cluster::generate(&GenSpec {
        pods_per_namespace: 8,
        bytes_per_container: 20_000,
        ..GenSpec::default()
    }));
    let faults = h.server.faults();
    for pod in ["pod-1", "pod-6"] {
        let stall = LogFault::StallBefore {
            duration: Duration::from_millis(1500),
        };
        faults.log_fault("ns-0", pod, None, stall, None);
    }
    faults.log_fault("ns-0", "pod-3", None, LogFault::Status { code: 500 }, None);
    h
}

fn export(h: &Harness, extra: &[&str]) -> Cmd {
    let mut cmd = h.export();
    cmd.args(["--max-attempts", "1"]).args(extra);
    cmd
}

#[test]
fn bar_and_summary_table_show_under_a_pseudo_terminal() {
    let h = slow_cluster();
    let (code, screen) = run_in_pty(export(&h, &[]));
    assert_eq!(code, 3, "pod-3 failed, so the run is partial:\n{screen}");
    assert!(screen.contains(BAR), "no progress bar drawn:\n{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(screen.contains("export finished: run"), "{screen}");
    let lines = visible_lines(&screen);
    for row in [
        "complete",
        "failed",
        "bytes in",
        "bytes out",
        "ratio",
        TABLE,
    ] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(row)),
            "no {row:?} row in the summary table:\n{screen}"
        );
    }
    let failed_row = format!("  {:<12}{:>12}", "failed", 1);
    assert!(lines.contains(&failed_row), "{screen}");
    // The table replaces the "export finished" log line; it is not printed twice.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("export finished")),
        "{screen}"
    );
    // The WARN line about pod-3 is whole, on a line of its own, the bar stepped aside.
    let warns: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("pod-3"))
        .collect();
    assert_eq!(warns.len(), 1, "{lines:#?}");
    assert!(
        !warns[0].contains(BAR),
        "log line mixed with the bar: {warns:?}"
    );
    assert!(warns[0].contains("container=app"), "{warns:?}");
}

#[test]
fn nothing_of_it_when_stderr_is_a_pipe() {
    let h = slow_cluster();
    let out = run_with_pipes(export(&h, &[]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.stderr.contains(BAR), "{}", out.stderr);
    assert!(!out.stderr.contains(TABLE), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b'),
        "escape codes: {:?}",
        out.stderr
    );
    // One summary line, the log event.
    let finished: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("export finished"))
        .collect();
    assert_eq!(finished.len(), 1, "{}", out.stderr);
    for field in ["complete=7", "failed=1", "ratio=", "seconds=", "run_dir="] {
        assert!(finished[0].contains(field), "{field}: {}", finished[0]);
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn json_logs_get_one_json_summary_line_and_no_bar_even_on_a_terminal() {
    let h = slow_cluster();
    let (code, screen) = run_in_pty(export(&h, &["--log-format", "json"]));
    assert_eq!(code, 3, "{screen}");
    assert!(!screen.contains(BAR), "{screen}");
    assert!(!screen.contains(TABLE), "{screen}");
    let summaries: Vec<serde_json::Value> = visible_lines(&screen)
        .iter()
        .filter(|l| l.contains("export finished"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(summaries.len(), 1, "{screen}");
    let s = &summaries[0];
    assert_eq!(s["complete"], 7, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert!(s["bytes"].as_u64().unwrap() > 7 * 20_000 - 1000, "{s}");
    assert!(s["ratio"].as_f64().unwrap() > 1.0, "{s}");
    assert!(s["seconds"].as_f64().unwrap() >= 1.5, "{s}");
    assert!(s["run_dir"].as_str().unwrap().contains("runs"), "{s}");
}

#[test]
fn progress_flag_overrides_the_terminal_check() {
    let h = slow_cluster();
    // never: no bar on a terminal, the summary table still.
    let (_, screen) = run_in_pty(export(&h, &["--progress", "never"]));
    assert!(!screen.contains(BAR), "{screen}");
    assert!(screen.contains(TABLE), "{screen}");
    // always (from the environment): drawn even into a pipe.
    let mut cmd = export(&h, &[]);
    cmd.env("KLE_PROGRESS", "always");
    let out = run_with_pipes(cmd);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains(BAR), "{}", out.stderr);
    assert!(out.stderr.contains(TABLE), "{}", out.stderr);
}

/// Run with stdout and stderr on a fresh pseudo-terminal (120x40); return the
/// exit code and every byte the terminal received.
fn run_in_pty(mut cmd: Cmd) -> (i32, String) {
    let (mut master, slave) = open_pty();
    cmd.env("TERM", "xterm-256color");
    cmd.command
        .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
        .stderr(Stdio::from(slave));
    let mut child = cmd.command.spawn().expect("run kube-log-exporter");
    // The parent's copies of the terminal side must close, or reading never ends.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // Ends with EIO once the child (the last holder of the other side) exits.
        let _ = master.read_to_end(&mut bytes);
        bytes
    });
    let code = wait_bounded(&mut child);
    let bytes = reader.join().expect("pty reader");
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

fn open_pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to two ints, no name buffer, default termios, a valid winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded: both are fresh descriptors owned by nobody else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn run_with_pipes(mut cmd: Cmd) -> Output {
    cmd.command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.command.spawn().expect("run kube-log-exporter");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr")));
    let code = wait_bounded(&mut child);
    Output {
        code,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn wait_bounded(child: &mut std::process::Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the export took longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a person reads, line by line: for each line the text after its last
/// carriage return (what was drawn over), without escape sequences.
fn visible_lines(screen: &str) -> Vec<String> {
    screen
        .split('\n')
        .map(|line| {
            let line = line.trim_end_matches('\r');
            strip_escapes(line.rsplit('\r').next().unwrap_or(line))
        })
        .collect()
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
