//! Every way in: kubeconfig with a token, with a client certificate, the
//! in-cluster ServiceAccount folder, and `kubectl proxy` (plain HTTP).

use fake_apiserver::{
    Cluster, Container, FakeApiServer, LogSpec, Options, Pod, full_access_rules, uid_for,
};

use crate::util::*;

/// One namespace, two pods, one container each.
fn small_cluster() -> Cluster {
    let pod = |name: &str, seed: u64| Pod {
        namespace: "shop".into(),
        name: name.into(),
        uid: uid_for("shop", name),
        node_name: Some("node-1".into()),
        labels: Default::default(),
        phase: "Running".into(),
        containers: vec![Container::running("app", LogSpec::with_bytes(seed, 20_000))],
    };
    Cluster {
        namespaces: vec!["shop".into()],
        pods: vec![pod("web-1", 11), pod("web-2", 12)],
    }
}

/// Both pods' logs are in the run, byte for byte.
fn assert_small_cluster_exported(server: &FakeApiServer, run_dir: &std::path::Path) {
    for pod in ["web-1", "web-2"] {
        let spec = server.with_cluster(|c| c.pod("shop", pod).unwrap().containers[0].log.clone());
        let written = gunzip(&run_dir.join(format!("shop/{pod}/app.log.gz")));
        assert_same_bytes(&written, &served(&spec), pod);
    }
    let m = manifest(run_dir);
    assert_eq!(m["counts"]["complete"], 2);
    assert_eq!(m["exit_code"], 0);
}

#[test]
fn kubeconfig_with_bearer_token() {
    let h = Harness::new(small_cluster());
    h.export().expect_code(0);
    assert_small_cluster_exported(&h.server, &h.only_run());
    let m = manifest(&h.only_run());
    assert!(
        m["connection"].as_str().unwrap().contains("kubeconfig"),
        "{}",
        m["connection"]
    );
}

#[test]
fn kubeconfig_from_the_kubeconfig_env_var() {
    let h = Harness::new(small_cluster());
    exporter()
        .env("KUBECONFIG", &h.kubeconfig)
        .arg("--output")
        .arg(h.out())
        .expect_code(0);
    assert_small_cluster_exported(&h.server, &h.only_run());
}

#[test]
fn kubeconfig_with_client_certificate() {
    let h = Harness::new(small_cluster());
    h.server
        .issue_client_cert("cert-user", &["log-readers"], full_access_rules());
    let kubeconfig = h.dir.path().join("cert-kubeconfig");
    h.server.write_kubeconfig(&kubeconfig, "cert-user");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains("client-certificate-data"),
        "the kubeconfig must use the certificate:\n{text}"
    );
    exporter()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--output")
        .arg(h.out())
        .expect_code(0);
    assert_small_cluster_exported(&h.server, &h.only_run());
}

#[test]
fn in_cluster_service_account_folder() {
    let h = Harness::new(small_cluster());
    let sa_dir = h.dir.path().join("serviceaccount");
    h.server
        .write_service_account_dir(&sa_dir, USER, "log-exporter");
    let port = h.server.addr().port().to_string();
    let out = exporter()
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &port)
        .env("KLE_SERVICE_ACCOUNT_DIR", &sa_dir)
        .arg("--output")
        .arg(h.out())
        .expect_code(0);
    assert!(
        !out.stderr.contains(TOKEN),
        "the token must never be logged"
    );
    assert_small_cluster_exported(&h.server, &h.only_run());
    let m = manifest(&h.only_run());
    assert!(
        m["connection"].as_str().unwrap().contains("in-cluster"),
        "{}",
        m["connection"]
    );
}

#[test]
fn in_cluster_without_token_file_says_what_to_mount() {
    let h = Harness::new(small_cluster());
    let empty = h.dir.path().join("empty-sa");
    std::fs::create_dir_all(&empty).unwrap();
    let out = exporter()
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .arg("--service-account-dir")
        .arg(&empty)
        .arg("--output")
        .arg(h.out())
        .expect_code(2);
    assert!(
        out.stderr.contains("automountServiceAccountToken"),
        "{}",
        out.stderr
    );
}

#[test]
fn kubectl_proxy_plain_http() {
    let h = Harness::with_options(
        small_cluster(),
        Options {
            tls: false,
            ..Options::default()
        },
    );
    exporter()
        .arg("--server")
        .arg(h.server.url())
        .arg("--output")
        .arg(h.out())
        .expect_code(0);
    assert_small_cluster_exported(&h.server, &h.only_run());
    // No credentials are sent to a proxy.
    assert!(h.server.url().starts_with("http://"));
}
