//! Failures a user can cause end in one sentence that says what to do, with
//! the exit code PRODUCT.md gives (2 usage/configuration, 1 nothing done).

use fake_apiserver::{Cluster, GenSpec, Options};

use crate::util::*;

fn one_pod() -> Cluster {
    Cluster::generate(&GenSpec::default())
}

fn assert_one_sentence(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l.starts_with("error: ")), "{stderr}");
}

#[test]
fn bad_flag_is_exit_2() {
    let out = exporter()
        .args(["--output", "/tmp/x", "--no-such-flag"])
        .expect_code(2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    let out = exporter()
        .args(["--output", "/tmp/x", "--since", "yesterday"])
        .expect_code(2);
    assert!(
        out.stderr.contains("--since") && out.stderr.contains("30s"),
        "{}",
        out.stderr
    );
    assert_one_sentence(&out.stderr);
    exporter().expect_code(2); // no --output
}

#[test]
fn missing_kubeconfig_is_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = exporter()
        .arg("--kubeconfig")
        .arg(dir.path().join("nope"))
        .arg("--output")
        .arg(dir.path().join("out"))
        .expect_code(2);
    assert!(
        out.stderr.contains("no kubeconfig found") && out.stderr.contains("--kubeconfig"),
        "{}",
        out.stderr
    );
    assert_one_sentence(&out.stderr);
    // Nothing in KUBECONFIG, no pod, no ~/.kube/config.
    let out = exporter()
        .arg("--output")
        .arg(dir.path().join("out"))
        .expect_code(2);
    assert!(out.stderr.contains("no kubeconfig found"), "{}", out.stderr);
}

#[test]
fn unknown_context_lists_the_ones_there_are() {
    let h = Harness::new(one_pod());
    let out = h.export().args(["--context", "prod"]).expect_code(2);
    assert!(
        out.stderr.contains("\"prod\" not found") && out.stderr.contains("fake"),
        "{}",
        out.stderr
    );
}

#[test]
fn wrong_ca_is_exit_1_naming_the_ca() {
    let h = Harness::new(one_pod());
    let other = Harness::new(one_pod());
    let ca_of = |k: &str| {
        k.lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
            .map(|v| v.trim().to_string())
            .expect("kubeconfig has certificate-authority-data")
    };
    let text = std::fs::read_to_string(&h.kubeconfig).unwrap();
    let wrong = text.replace(
        &ca_of(&text),
        &ca_of(&std::fs::read_to_string(&other.kubeconfig).unwrap()),
    );
    std::fs::write(&h.kubeconfig, wrong).unwrap();
    let out = h.export().expect_code(1);
    assert!(
        out.stderr.contains("not signed by the configured CA"),
        "{}",
        out.stderr
    );
    assert_one_sentence(&out.stderr);
    assert!(!out.stderr.contains(TOKEN));
}

#[test]
fn certificate_for_another_host_is_exit_1_naming_the_host_problem() {
    let h = Harness::with_options(
        one_pod(),
        Options {
            tls_host: "api.elsewhere.example".into(),
            ..Options::default()
        },
    );
    let out = h.export().expect_code(1);
    assert!(
        out.stderr.contains("not valid for that host name"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_server_is_exit_1() {
    let h = Harness::new(one_pod());
    let out = h
        .export()
        .args(["--server", "https://127.0.0.1:9", "--max-attempts", "2"])
        .expect_code(1);
    assert!(
        out.stderr
            .contains("cannot reach the API server at https://127.0.0.1:9"),
        "{}",
        out.stderr
    );
    assert_one_sentence(&out.stderr);
}

#[test]
fn rejected_token_is_exit_1_saying_it_expired_or_is_invalid() {
    let h = Harness::new(one_pod());
    let text = std::fs::read_to_string(&h.kubeconfig).unwrap();
    std::fs::write(&h.kubeconfig, text.replace(TOKEN, "tok-expired")).unwrap();
    let out = h.export().expect_code(1);
    assert!(
        out.stderr.contains("401") && out.stderr.contains("expired or invalid"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("tok-expired"),
        "credentials must not be shown"
    );
}

#[test]
fn no_right_to_list_namespaces_is_exit_1_pointing_at_doctor() {
    let h = Harness::new(one_pod());
    let kubeconfig = h.add_user("nobody", vec![]);
    let out = exporter()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--output")
        .arg(h.out())
        .expect_code(1);
    assert!(
        out.stderr.contains("cannot list resource \"namespaces\"")
            && out.stderr.contains("kube-log-exporter doctor"),
        "{}",
        out.stderr
    );
}

#[test]
fn output_that_is_not_a_folder_is_exit_1() {
    let h = Harness::new(one_pod());
    let file = h.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = exporter()
        .arg("--kubeconfig")
        .arg(&h.kubeconfig)
        .arg("--output")
        .arg(file.join("logs"))
        .expect_code(1);
    assert!(
        out.stderr.contains("not writable") && out.stderr.contains("--output"),
        "{}",
        out.stderr
    );
}
