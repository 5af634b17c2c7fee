//! The export itself: a cluster with every kind of pod, paging, per-container
//! outcomes, byte-exact content, and the concurrency cap.

use std::time::Duration;

use fake_apiserver::{
    Cluster, Container, ContainerKind, GenSpec, LogFault, LogSpec, Pod, Rule, namespace_rules,
    uid_for,
};

use crate::util::*;

/// 1,200 pods: `big-0` (1,100 pods, so listing it takes 3 pages of 500),
/// `mix-0` (98 pods cycling through every shape: init, ephemeral, restarted,
/// pending, waiting), and `locked` (2 pods the user may not read).
fn mixed_cluster() -> Cluster {
    let mut cluster = Cluster::generate(&GenSpec {
        namespaces: 1,
        pods_per_namespace: 1_100,
        bytes_per_container: 400,
        namespace_prefix: "big-".into(),
        seed: 1,
        ..GenSpec::default()
    });
    let mix = Cluster::generate(&GenSpec {
        namespaces: 1,
        pods_per_namespace: 98,
        containers_per_pod: 2,
        bytes_per_container: 3_000,
        namespace_prefix: "mix-".into(),
        mix: true,
        seed: 2,
    });
    let locked = Cluster::generate(&GenSpec {
        namespaces: 1,
        pods_per_namespace: 2,
        namespace_prefix: "locked-".into(),
        seed: 3,
        ..GenSpec::default()
    });
    for other in [mix, locked] {
        cluster.namespaces.extend(other.namespaces);
        cluster.pods.extend(other.pods);
    }
    cluster
}

#[test]
fn every_container_of_a_mixed_cluster_is_exported_or_accounted_for() {
    let h = Harness::new(mixed_cluster());
    // Everything but the `locked-0` namespace.
    let mut rules = vec![Rule::new(&["get", "list"], "namespaces", None)];
    rules.extend(namespace_rules("big-0"));
    rules.extend(namespace_rules("mix-0"));
    let kubeconfig = h.add_user("partial-reader", rules);
    // A pod deleted between the list and its log request.
    h.server.faults().delete_pod_on_first_log("mix-0", "pod-7");
    let cluster_before = h.server.with_cluster(|c| c.clone());

    let out = exporter()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--output")
        .arg(h.out())
        .expect_code(3); // the Forbidden namespace is a failure the operator must see
    let run = h.only_run();
    let m = manifest(&run);

    // Forbidden namespace: recorded with the API's message; the others went on.
    let locked = m["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "locked-0")
        .unwrap();
    assert!(
        locked["error"].as_str().unwrap().contains("forbidden"),
        "{locked}"
    );
    assert!(out.stderr.contains("locked-0"), "{}", out.stderr);

    let mut checked_files = 0;
    for pod in cluster_before
        .pods
        .iter()
        .filter(|p| p.namespace != "locked-0")
    {
        for c in &pod.containers {
            let e = entry(&m, &pod.namespace, &pod.name, &c.name, "current");
            let status = e["status"].as_str().unwrap();
            let reason = e["reason"].as_str().unwrap_or("");
            let kind = match c.kind {
                ContainerKind::Init => "init",
                ContainerKind::Regular => "regular",
                ContainerKind::Ephemeral => "ephemeral",
            };
            assert_eq!(e["container_kind"], kind);
            assert_eq!(e["pod_uid"], pod.uid.as_str());
            if pod.namespace == "mix-0" && pod.name == "pod-7" {
                assert_eq!(status, "skipped", "{e}");
                assert!(
                    reason.contains("deleted") && reason.contains("not found"),
                    "{e}"
                );
                continue;
            }
            if pod.node_name.is_none() {
                assert_eq!(status, "skipped", "{e}");
                assert!(reason.contains("not scheduled"), "{e}");
                assert!(e.get("path").is_none());
                continue;
            }
            if let fake_apiserver::ContainerState::Waiting { .. } = &c.state {
                assert_eq!(status, "skipped", "{e}");
                assert!(reason.contains("is waiting to start"), "{e}");
                continue;
            }
            assert_eq!(status, "complete", "{e}");
            let expected = served(&c.log);
            let file = run.join(format!("{}/{}/{}.log.gz", pod.namespace, pod.name, c.name));
            assert_same_bytes(&gunzip(&file), &expected, &file.display().to_string());
            assert_eq!(e["bytes"], expected.len() as u64);
            checked_files += 1;
            if let Some(previous) = &c.previous {
                let p = entry(&m, &pod.namespace, &pod.name, &c.name, "previous");
                assert_eq!(p["status"], "complete", "{p}");
                let file = run.join(format!(
                    "{}/{}/{}.previous.log.gz",
                    pod.namespace, pod.name, c.name
                ));
                assert_same_bytes(
                    &gunzip(&file),
                    &served(previous),
                    &file.display().to_string(),
                );
                checked_files += 1;
            }
        }
    }
    assert!(checked_files > 1_150, "only {checked_files} files checked");
    let counts = &m["counts"];
    assert_eq!(counts["failed"], 0, "{counts}");
    assert_eq!(counts["partial"], 0, "{counts}");

    // Paging: big-0 was listed in pages of 500 (3 requests, 2 with continue).
    let pages: Vec<String> = h
        .server
        .stats()
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/api/v1/namespaces/big-0/pods?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.contains("limit=500")), "{pages:?}");
    assert_eq!(
        pages.iter().filter(|p| p.contains("continue=")).count(),
        2,
        "{pages:?}"
    );

    // Nothing but final files and the manifest in the run folder.
    assert!(
        files_under(&run)
            .iter()
            .all(|f| f.ends_with(".log.gz") || f == "manifest.json")
    );
}

#[test]
fn a_20_mib_log_with_invalid_utf8_and_a_100_kib_line_is_byte_identical() {
    let mut log = LogSpec::with_bytes(77, 20 * 1024 * 1024);
    log.line_len = 200;
    log.lines = 20 * 1024 * 1024 / 201;
    log.invalid_utf8 = true;
    log.long_line_every = Some((5_000, 100 * 1024));
    log.lines_per_timestamp = 3;
    let cluster = Cluster {
        namespaces: vec!["data".into()],
        pods: vec![Pod {
            namespace: "data".into(),
            name: "crunch".into(),
            uid: uid_for("data", "crunch"),
            node_name: Some("node-1".into()),
            labels: Default::default(),
            phase: "Running".into(),
            containers: vec![Container::running("app", log.clone())],
        }],
    };
    let h = Harness::new(cluster);
    h.export().expect_code(0);
    let expected = served(&log);
    assert!(expected.len() > 20 * 1024 * 1024);
    assert!(
        std::str::from_utf8(&expected).is_err(),
        "the log must not be valid UTF-8"
    );
    let written = gunzip(&h.only_run().join("data/crunch/app.log.gz"));
    assert_same_bytes(&written, &expected, "20 MiB log");
    let m = manifest(&h.only_run());
    let e = entry(&m, "data", "crunch", "app", "current");
    assert_eq!(e["bytes"], expected.len() as u64);
    assert!(
        e["first_timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-22T01:"),
        "{e}"
    );
}

#[test]
fn concurrency_cap_queues_streams_instead_of_failing() {
    let cluster = Cluster::generate(&GenSpec {
        namespaces: 2,
        pods_per_namespace: 100,
        bytes_per_container: 2_000,
        ..GenSpec::default()
    });
    let h = Harness::new(cluster);
    for ns in ["ns-0", "ns-1"] {
        for p in 0..100 {
            let stall = LogFault::StallBefore {
                duration: Duration::from_millis(40),
            };
            h.server
                .faults()
                .log_fault(ns, &format!("pod-{p}"), None, stall, None);
        }
    }
    h.export().args(["--concurrency", "4"]).expect_code(0);
    let stats = h.server.stats();
    assert!(
        stats.max_concurrent_log_streams <= 4,
        "{} streams at once",
        stats.max_concurrent_log_streams
    );
    assert!(
        stats.max_concurrent_log_streams >= 3,
        "the cap was never reached: streams did not overlap"
    );
    let m = manifest(&h.only_run());
    assert_eq!(m["counts"]["complete"], 200);
}

#[test]
fn selection_flags_pick_namespaces_pods_and_containers() {
    let cluster = Cluster::generate(&GenSpec {
        namespaces: 3,
        pods_per_namespace: 14,
        containers_per_pod: 2,
        bytes_per_container: 500,
        mix: true,
        ..GenSpec::default()
    });
    let h = Harness::new(cluster);
    h.export()
        .args([
            "--exclude-namespace",
            "ns-2",
            "--pod",
            "pod-(1|3|10)",
            "-l",
            "tier=worker",
        ])
        .args([
            "--container-kinds",
            "regular,init",
            "--exclude-container",
            "sidecar",
        ])
        .expect_code(0);
    let m = manifest(&h.only_run());
    let mut chosen: Vec<String> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}/{}/{}",
                f["namespace"].as_str().unwrap(),
                f["pod"].as_str().unwrap(),
                f["container"].as_str().unwrap(),
                f["instance"].as_str().unwrap()
            )
        })
        .collect();
    chosen.sort();
    // tier=worker is the odd pods; shapes: pod-1 single app, pod-3 app + ephemeral (left out).
    assert_eq!(
        chosen,
        [
            "ns-0/pod-1/app/current",
            "ns-0/pod-3/app/current",
            "ns-1/pod-1/app/current",
            "ns-1/pod-3/app/current"
        ]
    );
    // The label selector went to the server.
    assert!(
        h.server
            .stats()
            .paths()
            .iter()
            .any(|p| p.contains("labelSelector=tier%3Dworker"))
    );
}

#[test]
fn own_pods_are_left_out_unless_asked() {
    let mut cluster = Cluster::generate(&GenSpec {
        pods_per_namespace: 2,
        ..GenSpec::default()
    });
    cluster.pods[0]
        .labels
        .insert("kube-log-exporter.io/self".into(), "true".into());
    let h = Harness::new(cluster);
    h.export().expect_code(0);
    assert_eq!(
        manifest(&h.only_run())["files"].as_array().unwrap().len(),
        1
    );
    h.export()
        .args(["--include-self", "--run-id", "second", "--full"])
        .expect_code(0);
    let m = manifest(&h.out().join("runs/second"));
    assert_eq!(m["files"].as_array().unwrap().len(), 2);
}

#[test]
fn files_and_folders_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::new(Cluster::generate(&GenSpec::default()));
    h.export().expect_code(0);
    let run = h.only_run();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run), 0o700);
    assert_eq!(mode(&run.join("ns-0/pod-0")), 0o700);
    assert_eq!(mode(&run.join("ns-0/pod-0/app.log.gz")), 0o600);
    assert_eq!(mode(&run.join("manifest.json")), 0o600);
    assert_eq!(mode(&h.out().join("state.json")), 0o600);
}
