//! Gapless, duplicate-free export across runs: the files of all runs,
//! concatenated per container, hold every line the container printed once.

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fake_apiserver::{Cluster, Container, LogFault, LogQuery, LogSpec, Pod, render_log, uid_for};

use crate::util::*;

/// Lines three to a timestamp, 0.3 s apart: runs end mid-second and between
/// lines that share a timestamp.
fn ticking_log(seed: u64, lines: u64) -> LogSpec {
    LogSpec {
        seed,
        lines,
        line_len: 60,
        start: Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap(),
        step_nanos: 300_000_000,
        lines_per_timestamp: 3,
        invalid_utf8: false,
        long_line_every: None,
    }
}

fn pod(name: &str, containers: Vec<Container>) -> Pod {
    Pod {
        namespace: "app".into(),
        name: name.into(),
        uid: uid_for("app", name),
        node_name: Some("node-1".into()),
        labels: Default::default(),
        phase: "Running".into(),
        containers,
    }
}

fn cluster(pods: Vec<Pod>) -> Cluster {
    Cluster {
        namespaces: vec!["app".into()],
        pods,
    }
}

/// The given runs' files for one container instance, concatenated (a run
/// with nothing new has no file).
fn union(out: &Path, runs: &[&str], file: &str) -> Vec<u8> {
    runs.iter()
        .map(|run| out.join("runs").join(run).join("app").join(file))
        .filter(|p| p.exists())
        .flat_map(|p| gunzip(&p))
        .collect()
}

fn set_lines(h: &Harness, pod: &str, lines: u64) {
    h.server
        .with_cluster(|c| c.pod_mut("app", pod).unwrap().containers[0].log.lines = lines);
}

#[test]
fn three_runs_while_lines_are_appended_hold_every_line_once() {
    let h = Harness::new(cluster(vec![
        pod("a", vec![Container::running("main", ticking_log(1, 10))]),
        pod("b", vec![Container::running("main", ticking_log(2, 7))]),
    ]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    set_lines(&h, "a", 23); // 13 more, starting inside the second run 1 ended in
    set_lines(&h, "b", 8);
    h.export().args(["--run-id", "r2"]).expect_code(0);
    set_lines(&h, "a", 40);
    h.export().args(["--run-id", "r3"]).expect_code(0);

    for (name, lines) in [("a", 40), ("b", 8)] {
        let expected = served(&ticking_log(if name == "a" { 1 } else { 2 }, lines));
        let got = union(
            &h.out(),
            &["r1", "r2", "r3"],
            &format!("{name}/main.log.gz"),
        );
        assert_same_bytes(&got, &expected, &format!("union of runs for pod {name}"));
    }
    // Run 3 had nothing new for b: no file, and the manifest says why.
    assert!(!h.out().join("runs/r3/app/b/main.log.gz").exists());
    let e = entry(
        &manifest(&h.out().join("runs/r3")),
        "app",
        "b",
        "main",
        "current",
    )
    .clone();
    assert_eq!(e["status"], "complete");
    assert_eq!(e["reason"], "no new lines since the last run");
    // The resumed requests floored sinceTime to the second of the checkpoint.
    let asked: Vec<String> = h
        .server
        .stats()
        .paths()
        .into_iter()
        .filter(|p| p.contains("/pods/a/log"))
        .collect();
    assert!(
        asked[1].contains("sinceTime=2026-11-22T03%3A00%3A00Z"),
        "{asked:?}"
    );
}

#[test]
fn a_restart_between_runs_exports_the_rest_of_the_old_instance_then_the_new_one() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(5, 12))],
    )]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    // The old instance printed 9 more lines, then the container restarted.
    let (old, new) = h.server.with_cluster(|c| {
        let container = &mut c.pod_mut("app", "a").unwrap().containers[0];
        container.log.lines = 21;
        let old = container.log.clone();
        container.restart(6);
        (old, container.log.clone())
    });
    h.export().args(["--run-id", "r2"]).expect_code(0);
    let old_union = [
        union(&h.out(), &["r1"], "a/main.log.gz"),
        union(&h.out(), &["r2"], "a/main.previous.log.gz"),
    ]
    .concat();
    assert_same_bytes(
        &old_union,
        &served(&old),
        "old instance: run 1 + previous of run 2",
    );
    assert_same_bytes(
        &union(&h.out(), &["r2"], "a/main.log.gz"),
        &served(&new),
        "new instance",
    );

    // Nothing new: the previous instance is not even asked for again.
    h.server.reset_stats();
    h.export().args(["--run-id", "r3"]).expect_code(0);
    let m = manifest(&h.out().join("runs/r3"));
    let previous = entry(&m, "app", "a", "main", "previous");
    assert_eq!(previous["status"], "skipped");
    assert!(
        previous["reason"]
            .as_str()
            .unwrap()
            .contains("already exported")
    );
    assert!(
        !h.server
            .stats()
            .paths()
            .iter()
            .any(|p| p.contains("previous=true"))
    );
    assert!(files_under(&h.out().join("runs/r3")) == ["manifest.json"]);
}

#[test]
fn an_instance_lost_between_runs_is_recorded_as_a_gap() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(6, 12))],
    )]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    let first_id = h.server.with_cluster(|c| {
        let container = &mut c.pod_mut("app", "a").unwrap().containers[0];
        let id = container.container_id.clone();
        container.log.lines = 30;
        container.restart(5); // instance 1 becomes previous ...
        container.restart(4); // ... and then is gone: instance 2 is previous now
        id
    });
    h.export().args(["--run-id", "r2"]).expect_code(0);
    let m = manifest(&h.out().join("runs/r2"));
    let gaps = m["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].as_str().unwrap().contains(&first_id), "{gaps:?}");
}

#[test]
fn a_deleted_pod_keeps_its_files_and_its_checkpoint_expires_after_the_ttl() {
    let h = Harness::new(cluster(vec![
        pod("gone", vec![Container::running("main", ticking_log(7, 10))]),
        pod(
            "stays",
            vec![Container::running("main", ticking_log(8, 10))],
        ),
    ]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    h.server.with_cluster(|c| c.delete_pod("app", "gone"));
    let state = |h: &Harness| std::fs::read_to_string(h.out().join("state.json")).unwrap();
    let gone_uid = uid_for("app", "gone");

    h.export().args(["--run-id", "r2"]).expect_code(0);
    assert!(
        state(&h).contains(&gone_uid),
        "kept within the default 7 days"
    );
    std::thread::sleep(Duration::from_millis(1_100));
    h.export()
        .args(["--run-id", "r3", "--state-ttl", "1s"])
        .expect_code(0);
    assert!(!state(&h).contains(&gone_uid), "expired after --state-ttl");
    assert!(state(&h).contains(&uid_for("app", "stays")));
    assert_same_bytes(
        &gunzip(&h.out().join("runs/r1/app/gone/main.log.gz")),
        &served(&ticking_log(7, 10)),
        "earlier file kept",
    );
}

#[test]
fn a_run_killed_mid_stream_leaves_no_truncated_file_and_the_next_run_completes_the_union() {
    let mut pods: Vec<Pod> = (0..5)
        .map(|i| {
            pod(
                &format!("quick-{i}"),
                vec![Container::running("main", ticking_log(10 + i, 50))],
            )
        })
        .collect();
    pods.push(pod(
        "slow",
        vec![Container::running("main", ticking_log(20, 2_000))],
    ));
    let h = Harness::new(cluster(pods));
    h.server.faults().log_fault(
        "app",
        "slow",
        None,
        LogFault::StallAfter {
            bytes: 30_000,
            duration: Duration::from_secs(60),
        },
        Some(1),
    );

    let mut child = h
        .export()
        .args(["--run-id", "killed"])
        .command
        .spawn()
        .unwrap();
    let killed = h.out().join("runs/killed/app");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (0..5).any(|i| !killed.join(format!("quick-{i}/main.log.gz")).exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the quick pods were never exported"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    while h.server.stats().open_log_streams == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow stream never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Only whole files under final names; the slow one is a hidden temp file.
    assert!(!killed.join("slow/main.log.gz").exists());
    assert!(killed.join("slow/.main.log.gz.tmp").exists());
    assert!(!h.out().join("runs/killed/manifest.json").exists());

    h.export().args(["--run-id", "next"]).expect_code(0);
    for i in 0..5 {
        let file = format!("quick-{i}/main.log.gz");
        assert!(
            !h.out().join("runs/next/app").join(&file).exists(),
            "quick-{i} exported twice"
        );
        assert_same_bytes(
            &union(&h.out(), &["killed", "next"], &file),
            &served(&ticking_log(10 + i, 50)),
            &file,
        );
    }
    assert_same_bytes(
        &union(&h.out(), &["killed", "next"], "slow/main.log.gz"),
        &served(&ticking_log(20, 2_000)),
        "slow",
    );
    assert!(
        !killed.join("slow/.main.log.gz.tmp").exists(),
        "the next run removes the dead run's temp file"
    );
}

#[test]
fn a_corrupt_state_file_means_a_full_export_with_a_warning() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(30, 20))],
    )]));
    std::fs::create_dir_all(h.out()).unwrap();
    std::fs::write(
        h.out().join("state.json"),
        b"{\"format_version\": 1, \"checkpoints\": {\"x\": tru",
    )
    .unwrap();
    let out = h.export().expect_code(0);
    assert!(
        out.stderr.contains("state.json is unreadable"),
        "{}",
        out.stderr
    );
    assert_same_bytes(
        &gunzip(&h.only_run().join("app/a/main.log.gz")),
        &served(&ticking_log(30, 20)),
        "full export",
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.out().join("state.json")).unwrap()).unwrap();
    assert_eq!(
        state["checkpoints"].as_object().unwrap().len(),
        1,
        "a good state replaces the corrupt one"
    );
}

#[test]
fn full_ignores_the_checkpoints_for_one_run() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(31, 20))],
    )]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    h.export().args(["--run-id", "r2", "--full"]).expect_code(0);
    assert_same_bytes(
        &union(&h.out(), &["r2"], "a/main.log.gz"),
        &served(&ticking_log(31, 20)),
        "--full",
    );
}

#[test]
fn stripped_timestamps_still_checkpoint_exactly() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(32, 10))],
    )]));
    h.export()
        .args(["--run-id", "r1", "--timestamps=false"])
        .expect_code(0);
    set_lines(&h, "a", 25);
    h.export()
        .args(["--run-id", "r2", "--timestamps=false"])
        .expect_code(0);
    let expected = render_log(&ticking_log(32, 25), &LogQuery::default());
    assert_same_bytes(
        &union(&h.out(), &["r1", "r2"], "a/main.log.gz"),
        &expected,
        "without timestamps",
    );
}

#[test]
fn tail_runs_neither_use_nor_move_the_checkpoints() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(33, 30))],
    )]));
    h.export().args(["--run-id", "r1"]).expect_code(0);
    let before = std::fs::read(h.out().join("state.json")).unwrap();
    set_lines(&h, "a", 40);
    h.export()
        .args(["--run-id", "ad-hoc", "--tail", "2"])
        .expect_code(0);
    assert_eq!(std::fs::read(h.out().join("state.json")).unwrap(), before);
    let tail = gunzip(&h.out().join("runs/ad-hoc/app/a/main.log.gz"));
    assert_eq!(tail.iter().filter(|&&b| b == b'\n').count(), 2);
}

#[test]
fn retention_keeps_exactly_the_newest_runs() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(34, 5))],
    )]));
    for (i, run) in [
        "20260101T000000Z",
        "20260102T000000Z",
        "20260103T000000Z",
        "20260104T000000Z",
    ]
    .iter()
    .enumerate()
    {
        set_lines(&h, "a", 5 + i as u64);
        h.export()
            .args(["--run-id", run, "--keep-runs", "2"])
            .expect_code(0);
    }
    let runs: Vec<String> = run_dirs(&h.out())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs, ["20260103T000000Z", "20260104T000000Z"]);
    assert!(h.out().join("state.json").exists());
}

#[test]
fn a_run_never_overwrites_another_runs_folder() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(35, 10))],
    )]));
    h.export().args(["--run-id", "same"]).expect_code(0);
    set_lines(&h, "a", 18);
    // Same id again (two runs in one second do this with the default id).
    let out = h.export().args(["--run-id", "same"]).expect_code(0);
    assert!(out.stderr.contains("runs/same-2"), "{}", out.stderr);
    assert_same_bytes(
        &union(&h.out(), &["same", "same-2"], "a/main.log.gz"),
        &served(&ticking_log(35, 18)),
        "both runs kept",
    );
    assert_eq!(manifest(&h.out().join("runs/same-2"))["run_id"], "same-2");
}

#[test]
fn a_retried_shard_keeps_what_its_first_attempt_wrote() {
    let h = Harness::new(cluster(vec![pod(
        "a",
        vec![Container::running("main", ticking_log(36, 10))],
    )]));
    let shard = [
        "--shard-count",
        "1",
        "--shard-index",
        "0",
        "--run-id",
        "job-1",
    ];
    h.export().args(shard).expect_code(0);
    set_lines(&h, "a", 16);
    h.export().args(shard).expect_code(0); // the Job retried the pod: same run folder
    let run = h.out().join("runs/job-1");
    let both = [
        gunzip(&run.join("app/a/main.log.gz")),
        gunzip(&run.join("app/a/main.2.log.gz")),
    ]
    .concat();
    assert_same_bytes(
        &both,
        &served(&ticking_log(36, 16)),
        "first attempt + retry",
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest-0-of-1.json")).unwrap()).unwrap();
    assert_eq!(m["files"][0]["path"], "app/a/main.2.log.gz");
}
