//! `--dry-run` lists and selects exactly as a run would and writes nothing.

use std::collections::BTreeSet;

use fake_apiserver::{Cluster, GenSpec};

use crate::util::*;

#[test]
fn dry_run_writes_nothing_and_lists_exactly_what_a_run_then_exports() {
    let h = Harness::new(Cluster::generate(&GenSpec {
        namespaces: 2,
        pods_per_namespace: 14,
        containers_per_pod: 2,
        bytes_per_container: 1_000,
        mix: true,
        ..GenSpec::default()
    }));
    let out = h
        .export()
        .args(["--dry-run", "--exclude-pod", "pod-1[0-3]"])
        .expect_code(0);
    assert!(
        !h.out().exists(),
        "a dry run creates nothing: {:?}",
        files_under(&h.out())
    );
    assert_eq!(h.server.stats().log_requests, 0, "a dry run reads no log");
    let planned: BTreeSet<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(path, _)| path.to_string()))
        .collect();
    assert!(out.stdout.contains("nothing written"), "{}", out.stdout);

    h.export()
        .args(["--exclude-pod", "pod-1[0-3]"])
        .expect_code(0);
    let m = manifest(&h.only_run());
    let exported: BTreeSet<String> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let suffix = if f["instance"] == "previous" {
                ".previous.log.gz"
            } else {
                ".log.gz"
            };
            format!(
                "{}/{}/{}{suffix}",
                f["namespace"].as_str().unwrap(),
                f["pod"].as_str().unwrap(),
                f["container"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(planned, exported);
    assert!(
        planned.iter().any(|p| p.ends_with(".previous.log.gz")),
        "previous instances are planned too"
    );
    assert_eq!(planned.len(), exported.len());
}
