//! Sharded exports (Indexed Job): N exporters split the pods by a stable
//! hash, write into one run folder, and together equal one unsharded run.

use std::collections::BTreeSet;

use fake_apiserver::{Cluster, GenSpec};

use crate::util::*;

fn cluster() -> Cluster {
    Cluster::generate(&GenSpec {
        namespaces: 4,
        pods_per_namespace: 500,
        bytes_per_container: 300,
        ..GenSpec::default()
    })
}

fn shard_manifest(run: &std::path::Path, i: u32) -> serde_json::Value {
    let bytes = std::fs::read(run.join(format!("manifest-{i}-of-4.json"))).expect("shard manifest");
    serde_json::from_slice(&bytes).unwrap()
}

fn paths(m: &serde_json::Value) -> Vec<String> {
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str().map(String::from))
        .collect()
}

#[test]
fn four_shards_in_parallel_equal_one_unsharded_run() {
    let h = Harness::new(cluster());
    h.export().args(["--run-id", "whole"]).expect_code(0);
    let whole = h.out().join("runs/whole");

    let sharded_out = h.dir.path().join("sharded");
    let children: Vec<_> = (0..4u32)
        .map(|i| {
            let mut cmd = exporter();
            cmd.arg("--kubeconfig")
                .arg(&h.kubeconfig)
                .arg("--output")
                .arg(&sharded_out)
                .env("KLE_RUN_ID", "job-29123456")
                .args(["--shard-count", "4"]);
            // Shard 3 learns its index the way an Indexed Job tells it.
            if i == 3 {
                cmd.env("JOB_COMPLETION_INDEX", "3");
            } else {
                cmd.arg("--shard-index").arg(i.to_string());
            }
            cmd.command
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sharded = sharded_out.join("runs/job-29123456");

    // No file written by two shards; together, exactly the unsharded set.
    let mut union = BTreeSet::new();
    let mut sizes = Vec::new();
    for i in 0..4 {
        let m = shard_manifest(&sharded, i);
        assert_eq!(m["shard"]["index"], i);
        let mine = paths(&m);
        sizes.push(mine.len() as f64);
        for p in mine {
            assert!(union.insert(p.clone()), "{p} written by two shards");
        }
    }
    let whole_files: BTreeSet<String> = paths(&manifest(&whole)).into_iter().collect();
    assert_eq!(whole_files.len(), 2_000);
    assert_eq!(union, whole_files);
    for p in &whole_files {
        let a = std::fs::read(whole.join(p)).unwrap();
        let b = std::fs::read(sharded.join(p)).unwrap();
        assert!(
            a == b,
            "{p} differs between the sharded and the unsharded run"
        );
    }
    let mean = sizes.iter().sum::<f64>() / 4.0;
    let spread = (sizes.iter().cloned().fold(f64::MIN, f64::max)
        - sizes.iter().cloned().fold(f64::MAX, f64::min))
        / mean;
    assert!(spread <= 0.15, "shard sizes {sizes:?}");
    // Each shard keeps its own checkpoints.
    for i in 0..4 {
        assert!(sharded_out.join(format!("state-{i}-of-4.json")).exists());
    }

    // verify understands a run written by shards, and notices one missing.
    exporter().arg("verify").arg(&sharded).expect_code(0);
    std::fs::remove_file(sharded.join("manifest-2-of-4.json")).unwrap();
    let out = exporter().arg("verify").arg(&sharded).expect_code(1);
    assert!(
        out.stdout.contains("shard 2 has not finished"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_pods_shard_does_not_change_when_other_pods_come_and_go() {
    let h = Harness::new(cluster());
    let shard0 = |run: &str| -> BTreeSet<String> {
        h.export()
            .args([
                "--shard-count",
                "4",
                "--shard-index",
                "0",
                "--full",
                "--run-id",
                run,
            ])
            .expect_code(0);
        let m = serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(h.out().join(format!("runs/{run}/manifest-0-of-4.json"))).unwrap(),
        )
        .unwrap();
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}/{}",
                    f["namespace"].as_str().unwrap(),
                    f["pod"].as_str().unwrap()
                )
            })
            .collect()
    };
    let before = shard0("before");
    let removed: Vec<String> = h.server.with_cluster(|c| {
        let gone: Vec<String> = c
            .pods
            .iter()
            .step_by(7)
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        c.pods
            .retain(|p| !gone.contains(&format!("{}/{}", p.namespace, p.name)));
        let extra = Cluster::generate(&GenSpec {
            namespaces: 4,
            pods_per_namespace: 40,
            bytes_per_container: 100,
            namespace_prefix: "new-".into(),
            seed: 5,
            ..GenSpec::default()
        });
        c.namespaces.extend(extra.namespaces);
        c.pods.extend(extra.pods);
        gone
    });
    let after = shard0("after");
    let old_after: BTreeSet<String> = after
        .iter()
        .filter(|p| !p.starts_with("new-"))
        .cloned()
        .collect();
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|p| !removed.contains(p))
        .cloned()
        .collect();
    assert_eq!(old_after, expected, "pods that stayed kept their shard");
    assert!(
        after.iter().any(|p| p.starts_with("new-")),
        "new pods join shard 0 too"
    );
}

#[test]
fn shard_flags_are_checked() {
    let out = exporter()
        .args([
            "--output",
            "/tmp/x",
            "--shard-count",
            "4",
            "--shard-index",
            "4",
        ])
        .expect_code(2);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
    let out = exporter()
        .args(["--output", "/tmp/x", "--shard-count", "4"])
        .expect_code(2);
    assert!(
        out.stderr.contains("JOB_COMPLETION_INDEX"),
        "{}",
        out.stderr
    );
}
