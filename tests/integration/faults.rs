//! A real cluster's faults: throttled and failing lists, expired continue
//! tokens, cut and stalled streams, pods deleted mid-stream, rotated tokens,
//! SIGTERM and deadlines, a full disk. Each ends in a complete export or an
//! exact record of what is missing.

use std::path::Path;
use std::time::{Duration, Instant};

use fake_apiserver::{Cluster, Container, GenSpec, LogFault, LogSpec, Pod, uid_for};

use crate::util::*;

fn pod(ns: &str, name: &str, log: LogSpec) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        uid: uid_for(ns, name),
        node_name: Some("node-1".into()),
        labels: Default::default(),
        phase: "Running".into(),
        containers: vec![Container::running("main", log)],
    }
}

fn one_namespace(pods: Vec<Pod>) -> Cluster {
    Cluster {
        namespaces: vec!["app".into()],
        pods,
    }
}

fn log_of(h: &Harness, ns: &str, pod: &str) -> LogSpec {
    h.server
        .with_cluster(|c| c.pod(ns, pod).unwrap().containers[0].log.clone())
}

fn assert_exported(h: &Harness, run: &Path, ns: &str, pod: &str) {
    let expected = served(&log_of(h, ns, pod));
    assert_same_bytes(
        &gunzip(&run.join(format!("{ns}/{pod}/main.log.gz"))),
        &expected,
        &format!("{ns}/{pod}"),
    );
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn throttled_and_failing_lists_are_retried_honouring_retry_after() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "a",
        LogSpec::with_bytes(1, 30_000),
    )]));
    h.server.faults().fail_lists(&[429, 503, 429], 1);
    let start = Instant::now();
    h.export().expect_code(0);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "Retry-After: 1 was not honoured ({:?})",
        start.elapsed()
    );
    assert_exported(&h, &h.only_run(), "app", "a");
    assert_eq!(
        h.server.stats().list_requests,
        2 + 3,
        "two lists, three of them answered with retries"
    );
}

#[test]
fn lists_that_keep_failing_end_the_run_with_a_sentence() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "a",
        LogSpec::with_bytes(1, 3_000),
    )]));
    h.server.faults().fail_lists(&[503; 10], 0);
    let out = h.export().args(["--max-attempts", "3"]).expect_code(1);
    assert!(out.stderr.contains("503"), "{}", out.stderr);
}

#[test]
fn an_expired_continue_token_restarts_the_list_without_duplicates() {
    let cluster = Cluster::generate(&GenSpec {
        pods_per_namespace: 1_100,
        bytes_per_container: 200,
        ..GenSpec::default()
    });
    let h = Harness::new(cluster);
    h.server.faults().expire_continue_tokens_on_use(1);
    h.export().expect_code(0);
    let m = manifest(&h.only_run());
    assert_eq!(
        m["files"].as_array().unwrap().len(),
        1_100,
        "every pod once"
    );
    assert_eq!(m["counts"]["complete"], 1_100);
    let pages: Vec<String> = h
        .server
        .stats()
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/api/v1/namespaces/ns-0/pods?"))
        .collect();
    assert_eq!(
        pages.len(),
        5,
        "page 1, page 2 (410), then 3 pages again: {pages:?}"
    );
}

#[test]
fn a_stream_cut_midway_resumes_into_an_identical_file() {
    let h = Harness::new(one_namespace(vec![
        pod("app", "once", LogSpec::with_bytes(2, 400_000)),
        pod("app", "twice", LogSpec::with_bytes(3, 400_000)),
    ]));
    h.server.faults().log_fault(
        "app",
        "once",
        None,
        LogFault::DropAfter { bytes: 100_003 },
        Some(1),
    );
    h.server.faults().log_fault(
        "app",
        "twice",
        None,
        LogFault::DropAfter { bytes: 70_001 },
        Some(2),
    );
    h.export().expect_code(0);
    let run = h.only_run();
    assert_exported(&h, &run, "app", "once");
    assert_exported(&h, &run, "app", "twice");
    let m = manifest(&run);
    assert_eq!(entry(&m, "app", "once", "main", "current")["attempts"], 2);
    assert_eq!(entry(&m, "app", "twice", "main", "current")["attempts"], 3);
    let resumed: Vec<String> = h
        .server
        .stats()
        .paths()
        .into_iter()
        .filter(|p| p.contains("/pods/twice/log") && p.contains("sinceTime"))
        .collect();
    assert_eq!(resumed.len(), 2, "{resumed:?}");
}

#[test]
fn a_stream_cut_too_often_is_partial_with_whole_lines() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "flaky",
        LogSpec::with_bytes(4, 400_000),
    )]));
    h.server.faults().log_fault(
        "app",
        "flaky",
        None,
        LogFault::DropAfter { bytes: 60_000 },
        None,
    );
    h.export().args(["--max-attempts", "2"]).expect_code(3);
    let run = h.only_run();
    let e = entry(&manifest(&run), "app", "flaky", "main", "current").clone();
    assert_eq!(e["status"], "partial", "{e}");
    assert!(e["reason"].as_str().unwrap().contains("2 attempt"), "{e}");
    let written = gunzip(&run.join("app/flaky/main.log.gz"));
    let expected = served(&log_of(&h, "app", "flaky"));
    // The cut falls inside the log's first second, so the resumed request
    // re-sends those bytes (dropped) and is cut again: whole lines up to the cut.
    assert!(written.len() > 50_000, "{} bytes written", written.len());
    assert_same_bytes(
        &written,
        &expected[..written.len().min(expected.len())],
        "a prefix of the log",
    );
    assert!(written.ends_with(b"\n"), "whole lines only");
}

#[test]
fn a_stalled_stream_is_cut_by_the_idle_timeout_and_resumed() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "stuck",
        LogSpec::with_bytes(5, 300_000),
    )]));
    let stall = LogFault::StallAfter {
        bytes: 50_000,
        duration: Duration::from_secs(60),
    };
    h.server
        .faults()
        .log_fault("app", "stuck", None, stall, Some(1));
    let start = Instant::now();
    h.export()
        .args(["--stream-idle-timeout", "1s"])
        .expect_code(0);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_exported(&h, &h.only_run(), "app", "stuck");
    assert_eq!(
        entry(&manifest(&h.only_run()), "app", "stuck", "main", "current")["attempts"],
        2
    );
}

#[test]
fn a_pod_deleted_mid_stream_keeps_what_was_received_as_partial() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "doomed",
        LogSpec::with_bytes(6, 300_000),
    )]));
    let stall = LogFault::StallAfter {
        bytes: 50_000,
        duration: Duration::from_secs(60),
    };
    h.server
        .faults()
        .log_fault("app", "doomed", None, stall, None);
    let expected = served(&log_of(&h, "app", "doomed"));
    let mut child = h
        .export()
        .args(["--stream-idle-timeout", "2s"])
        .command
        .spawn()
        .unwrap();
    wait_until("the log stream", Duration::from_secs(20), || {
        h.server.stats().open_log_streams > 0
    });
    std::thread::sleep(Duration::from_millis(300));
    h.server.with_cluster(|c| c.delete_pod("app", "doomed"));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let run = h.only_run();
    let e = entry(&manifest(&run), "app", "doomed", "main", "current").clone();
    assert_eq!(e["status"], "partial", "{e}");
    assert!(e["reason"].as_str().unwrap().contains("not found"), "{e}");
    let written = gunzip(&run.join("app/doomed/main.log.gz"));
    assert!(!written.is_empty() && expected.starts_with(&written) && written.ends_with(b"\n"));
}

#[test]
fn a_rotated_service_account_token_is_read_again_after_401() {
    let pods = (0..6)
        .map(|i| pod("app", &format!("p{i}"), LogSpec::with_bytes(10 + i, 20_000)))
        .collect();
    let h = Harness::new(one_namespace(pods));
    for i in 0..6 {
        let stall = LogFault::StallBefore {
            duration: Duration::from_millis(250),
        };
        h.server
            .faults()
            .log_fault("app", &format!("p{i}"), None, stall, None);
    }
    let sa = h.dir.path().join("sa");
    h.server
        .write_service_account_dir(&sa, USER, "log-exporter");
    let port = h.server.addr().port().to_string();
    let mut cmd = exporter();
    cmd.env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &port)
        .env("KLE_SERVICE_ACCOUNT_DIR", &sa)
        .arg("--output")
        .arg(h.out())
        .args(["--concurrency", "1"]);
    cmd.command.stderr(std::process::Stdio::piped());
    let child = cmd.command.spawn().unwrap();
    wait_until("the first log stream", Duration::from_secs(20), || {
        h.server.stats().log_requests > 0
    });
    // The kubelet rotates the bound token: the server and the file change together.
    h.server.rotate_token(USER, "tok-rotated-5678");
    std::fs::write(sa.join("token"), "tok-rotated-5678").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("read them again"), "{stderr}");
    for i in 0..6 {
        assert_exported(&h, &h.only_run(), "app", &format!("p{i}"));
    }
    assert!(!stderr.contains("tok-rotated-5678") && !stderr.contains(TOKEN));
}

#[test]
fn a_second_401_fails_the_container_with_a_clear_reason() {
    let pods = (0..3)
        .map(|i| pod("app", &format!("p{i}"), LogSpec::with_bytes(20 + i, 5_000)))
        .collect();
    let h = Harness::new(one_namespace(pods));
    h.server.faults().log_fault(
        "app",
        "p0",
        None,
        LogFault::StallBefore {
            duration: Duration::from_millis(500),
        },
        None,
    );
    let mut child = h
        .export()
        .args(["--concurrency", "1"])
        .command
        .spawn()
        .unwrap();
    wait_until("the first log stream", Duration::from_secs(20), || {
        h.server.stats().log_requests > 0
    });
    h.server
        .rotate_token(USER, "tok-the-kubeconfig-does-not-have");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let m = manifest(&h.only_run());
    let e = entry(&m, "app", "p2", "main", "current");
    assert_eq!(e["status"], "failed");
    assert!(
        e["reason"].as_str().unwrap().contains("401 Unauthorized"),
        "{e}"
    );
}

/// A stream that stalls for a minute after 50 kB, in a run that is stopped.
fn stopped_run(stop: impl FnOnce(&Harness, u32), extra: &[&str]) -> Harness {
    let h = Harness::new(one_namespace(vec![
        pod("app", "done", LogSpec::with_bytes(30, 10_000)),
        pod("app", "slow", LogSpec::with_bytes(31, 500_000)),
    ]));
    let stall = LogFault::StallAfter {
        bytes: 50_000,
        duration: Duration::from_secs(60),
    };
    h.server
        .faults()
        .log_fault("app", "slow", None, stall, Some(1));
    let start = Instant::now();
    let mut child = h
        .export()
        .args(["--run-id", "stopped", "--shutdown-grace", "1s"])
        .args(extra)
        .command
        .spawn()
        .unwrap();
    stop(&h, child.id());
    let status = child.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "stopping took {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(3));
    h
}

fn assert_stopped_run_is_recorded_and_continued(h: &Harness) {
    let run = h.out().join("runs/stopped");
    let m = manifest(&run);
    let slow = entry(&m, "app", "slow", "main", "current").clone();
    assert_eq!(slow["status"], "partial", "{slow}");
    assert!(
        slow["reason"].as_str().unwrap().contains("shutdown"),
        "{slow}"
    );
    assert!(
        m["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("stopped")),
        "{m}"
    );
    assert_exported(h, &run, "app", "done");
    // The next run continues from the checkpoint: the union is the whole log.
    h.server.faults().clear();
    h.export().args(["--run-id", "next"]).expect_code(0);
    let union = [
        gunzip(&run.join("app/slow/main.log.gz")),
        gunzip(&h.out().join("runs/next/app/slow/main.log.gz")),
    ]
    .concat();
    assert_same_bytes(&union, &served(&log_of(h, "app", "slow")), "stopped + next");
}

#[test]
fn sigterm_closes_streams_writes_manifest_and_state_and_exits_3() {
    let h = stopped_run(
        |h, pid| {
            wait_until("the slow stream", Duration::from_secs(20), || {
                h.server.stats().open_log_streams > 0
            });
            std::thread::sleep(Duration::from_millis(300));
            let killed = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        },
        &[],
    );
    assert_stopped_run_is_recorded_and_continued(&h);
}

#[test]
fn the_deadline_stops_the_run_like_sigterm() {
    let h = stopped_run(|_, _| {}, &["--deadline", "2s"]);
    assert_stopped_run_is_recorded_and_continued(&h);
}

#[test]
fn insecure_skip_tls_verify_works_and_warns() {
    let h = Harness::with_options(
        one_namespace(vec![pod("app", "a", LogSpec::with_bytes(40, 5_000))]),
        fake_apiserver::Options {
            tls_host: "api.elsewhere.example".into(),
            ..Default::default()
        },
    );
    let out = h.export().arg("--insecure-skip-tls-verify").expect_code(0);
    assert!(out.stderr.contains("NOT verified"), "{}", out.stderr);
    assert_exported(&h, &h.only_run(), "app", "a");
}

#[test]
fn credentials_never_appear_in_logs_manifests_or_files() {
    let h = Harness::new(one_namespace(vec![pod(
        "app",
        "a",
        LogSpec::with_bytes(41, 5_000),
    )]));
    let (_cert, key) = h.server.issue_client_cert(
        "cert-user",
        &["readers"],
        fake_apiserver::full_access_rules(),
    );
    let cert_kubeconfig = h.dir.path().join("cert-kubeconfig");
    h.server.write_kubeconfig(&cert_kubeconfig, "cert-user");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let secrets = [TOKEN.to_string(), key_body[..40].to_string()];

    let mut seen = String::new();
    for kubeconfig in [&h.kubeconfig, &cert_kubeconfig] {
        for format in ["text", "json"] {
            let out = exporter()
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .arg("--output")
                .arg(h.out())
                .args(["--log-level", "trace", "--log-format", format, "--full"])
                .arg("--run-id")
                .arg(format!(
                    "{format}-{}",
                    kubeconfig.file_name().unwrap().to_string_lossy()
                ))
                .expect_code(0);
            seen += &out.stderr;
            seen += &out.stdout;
        }
    }
    // A failing run too: errors must not quote the token either.
    let text = std::fs::read_to_string(&h.kubeconfig).unwrap();
    std::fs::write(&h.kubeconfig, text.replace(TOKEN, "tok-wrong-secret-0000")).unwrap();
    seen += &h
        .export()
        .args(["--log-level", "trace"])
        .expect_code(1)
        .stderr;
    for file in files_under(&h.out()) {
        let bytes = std::fs::read(h.out().join(&file)).unwrap();
        seen += &String::from_utf8_lossy(&bytes);
    }
    assert!(seen.len() > 1_000);
    for secret in secrets.iter().chain([&"tok-wrong-secret-0000".to_string()]) {
        assert!(
            !seen.contains(secret.as_str()),
            "a credential leaked: {secret}"
        );
    }
    assert!(!seen.to_lowercase().contains("authorization: bearer"));
}

#[test]
fn a_full_disk_removes_the_unfinished_file_and_exits_1_naming_the_path() {
    let h = Harness::new(one_namespace(vec![
        pod("app", "a-small", LogSpec::with_bytes(50, 20_000)),
        pod("app", "b-huge", {
            let mut log = LogSpec::with_bytes(51, 8_000_000);
            log.invalid_utf8 = true;
            log
        }),
    ]));
    // A 400 KiB filesystem of its own, in a private mount namespace.
    let mount = h.dir.path().join("small-disk");
    let copy = h.dir.path().join("after");
    std::fs::create_dir_all(&mount).unwrap();
    let bin = env!("CARGO_BIN_EXE_kube-log-exporter");
    let script = format!(
        "mount -t tmpfs -o size=400k tmpfs '{m}' || exit 99; '{bin}' --kubeconfig '{k}' --output '{m}/out' --concurrency 1; code=$?; cp -a '{m}/out' '{c}'; exit $code",
        m = mount.display(),
        k = h.kubeconfig.display(),
        c = copy.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(99),
        "this test needs a tmpfs in a user+mount namespace (unshare -rm): {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is full") && stderr.contains("b-huge"),
        "{stderr}"
    );
    let runs = run_dirs(&copy);
    let run = &runs[0];
    assert_exported(&h, run, "app", "a-small");
    let left = files_under(run);
    assert!(
        !left.iter().any(|f| f.contains("b-huge")),
        "the unfinished file is removed: {left:?}"
    );
}

#[test]
fn soak_500_pods_with_cut_streams_and_throttled_lists_ends_exact() {
    let cluster = Cluster::generate(&GenSpec {
        namespaces: 100,
        pods_per_namespace: 5,
        bytes_per_container: 20_000,
        seed: 9,
        ..GenSpec::default()
    });
    let h = Harness::new(cluster);
    // 2 of the 101 list calls throttled or failing; 5% of the streams cut once at a random point.
    h.server.faults().fail_lists(&[429, 503], 0);
    let mut rng = fastrand::Rng::with_seed(42);
    let mut cut = 0;
    for ns in 0..100 {
        for p in 0..5 {
            if rng.u8(0..100) < 5 {
                let bytes = rng.u64(1..19_000);
                h.server.faults().log_fault(
                    &format!("ns-{ns}"),
                    &format!("pod-{p}"),
                    None,
                    LogFault::DropAfter { bytes },
                    Some(1),
                );
                cut += 1;
            }
        }
    }
    assert!(cut >= 10, "{cut} streams cut");
    let start = Instant::now();
    h.export().expect_code(0);
    assert!(start.elapsed() < Duration::from_secs(120));
    let run = h.only_run();
    for ns in 0..100 {
        for p in 0..5 {
            let spec = h.server.with_cluster(|c| {
                c.pod(&format!("ns-{ns}"), &format!("pod-{p}"))
                    .unwrap()
                    .containers[0]
                    .log
                    .clone()
            });
            let file = run.join(format!("ns-{ns}/pod-{p}/app.log.gz"));
            assert_same_bytes(&gunzip(&file), &served(&spec), &file.display().to_string());
        }
    }
    assert_eq!(manifest(&run)["counts"]["complete"], 500);
}
