//! `kube-log-exporter verify RUN_DIR` on a real run: it passes on the run as
//! written, and names the file after a byte is flipped, a file deleted, or a
//! file added.

use std::path::{Path, PathBuf};

use fake_apiserver::{Cluster, GenSpec};

use crate::util::{Harness, Output, exporter, manifest};

/// One export of a small cluster with every pod shape (restarts, init and
/// ephemeral containers, waiting containers); returns the harness and run folder.
fn exported_run() -> (Harness, PathBuf) {
    let h = Harness::new(Cluster::generate(&GenSpec {
        namespaces: 2,
        pods_per_namespace: 7,
        bytes_per_container: 20_000,
        mix: true,
        ..GenSpec::default()
    }));
    h.export().expect_code(0);
    let run = h.only_run();
    (h, run)
}

fn verify(run: &Path) -> Output {
    exporter().arg("verify").arg(run).run()
}

/// Paths (relative to the run folder) of the files the manifest lists.
fn listed_files(run: &Path) -> Vec<String> {
    let m = manifest(run);
    let files: Vec<String> = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .collect();
    assert!(files.len() >= 10, "the run wrote too few files: {files:?}");
    files
}

/// A copy of the run folder to damage, so each case starts from a good run.
fn copy_of(run: &Path, name: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let to = run
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("damaged-{name}"));
    copy(run, &to);
    to
}

fn assert_fails_naming(out: &Output, tag: &str, path: &str) {
    assert_eq!(
        out.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let named = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some(tag) && words.next() == Some(&format!("{path}:"))
    };
    assert!(
        out.stdout.lines().any(named),
        "no line \"{tag} {path}: ...\" in:\n{}",
        out.stdout
    );
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| !l.starts_with("FAIL:"))
            .count(),
        1,
        "exactly one finding expected:\n{}",
        out.stdout
    );
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("FAIL:") && last.contains("restore"),
        "{last}"
    );
}

#[test]
fn a_fresh_run_verifies() {
    let (_h, run) = exported_run();
    let files = listed_files(&run);
    let out = verify(&run);
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout
            .contains(&format!("OK: all {} files of", files.len())),
        "{}",
        out.stdout
    );
}

#[test]
fn a_flipped_byte_is_named() {
    let (_h, run) = exported_run();
    let files = listed_files(&run);

    // In the deflate data: gunzip fails (or its CRC does), and the sha256 differs.
    let damaged = copy_of(&run, "deflate");
    let victim = &files[0];
    let path = damaged.join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let out = verify(&damaged);
    assert_fails_naming(&out, "CORRUPT", victim);
    assert!(out.stdout.contains("sha256 is"), "{}", out.stdout);

    // In the gzip header's mtime: gunzip still succeeds; only the sha256 can tell.
    let damaged = copy_of(&run, "header");
    let victim = &files[files.len() - 1];
    let path = damaged.join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = verify(&damaged);
    assert_fails_naming(&out, "CORRUPT", victim);
    assert!(out.stdout.contains("sha256 is"), "{}", out.stdout);
    assert!(!out.stdout.contains("not a whole gzip"), "{}", out.stdout);
}

#[test]
fn a_deleted_file_is_named() {
    let (_h, run) = exported_run();
    let files = listed_files(&run);
    let damaged = copy_of(&run, "deleted");
    let victim = &files[files.len() / 2];
    std::fs::remove_file(damaged.join(victim)).unwrap();
    let out = verify(&damaged);
    assert_fails_naming(&out, "MISSING", victim);
    assert!(
        out.stdout.contains("1 missing, 0 corrupt, 0 extra"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_added_file_is_named() {
    let (_h, run) = exported_run();
    let files = listed_files(&run);
    let damaged = copy_of(&run, "added");
    let dir = Path::new(&files[0]).parent().unwrap();
    let added = dir.join("stowaway.log.gz");
    std::fs::copy(damaged.join(&files[0]), damaged.join(&added)).unwrap();
    let out = verify(&damaged);
    assert_fails_naming(&out, "EXTRA", &added.display().to_string());

    // A shard's manifest is the run's own record, not an extra file.
    let damaged = copy_of(&run, "shard-manifest");
    std::fs::copy(
        damaged.join("manifest.json"),
        damaged.join("manifest-1-of-2.json"),
    )
    .unwrap();
    assert_eq!(verify(&damaged).code, 0);
}

#[test]
fn a_folder_without_manifest_is_not_a_run() {
    let (_h, run) = exported_run();
    let damaged = copy_of(&run, "no-manifest");
    std::fs::remove_file(damaged.join("manifest.json")).unwrap();
    let out = verify(&damaged);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("manifest.json does not exist")
            && out.stderr.contains("pass the folder of a completed run"),
        "{}",
        out.stderr
    );
}
