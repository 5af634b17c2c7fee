//! `kube-log-exporter doctor` against the fake API server: it must pass with
//! the exporter's rights, fail without them, and print RBAC that — applied to
//! the server's RBAC table — makes it pass.

use std::path::Path;

use fake_apiserver::{Cluster, Rule, namespace_rules};
use serde_json::Value;

use crate::util::{Harness, Output, exporter};

fn cluster() -> Cluster {
    Cluster {
        namespaces: vec!["team-a".into(), "team-b".into(), "kube-system".into()],
        pods: Vec::new(),
    }
}

fn doctor(kubeconfig: &Path, extra: &[&str]) -> crate::util::Cmd {
    let mut cmd = exporter();
    cmd.arg("doctor")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra);
    cmd
}

/// The YAML objects doctor printed (its report lines are YAML comments).
fn printed_objects(out: &Output) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor's stdout is not YAML ({e}):\n{}", out.stdout))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// "Apply" printed RBAC to the fake server: every (Cluster)RoleBinding whose
/// subjects name `user` (a User, or the ServiceAccount behind a
/// `system:serviceaccount:NS:NAME` user) grants its role's rules, cluster-wide
/// for a ClusterRoleBinding, in the binding's namespace for a RoleBinding.
fn rules_for(user: &str, objects: &[Value]) -> Vec<Rule> {
    let role = |kind: &str, name: &str, ns: Option<&str>| -> &Value {
        objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && o["metadata"]["namespace"].as_str() == ns
            })
            .unwrap_or_else(|| {
                panic!("the printed RBAC binds {kind} {name} but does not define it")
            })
    };
    let names_user = |s: &Value| match s["kind"].as_str() {
        Some("User") => s["name"] == user,
        Some("ServiceAccount") => {
            format!(
                "system:serviceaccount:{}:{}",
                s["namespace"].as_str().unwrap_or_default(),
                s["name"].as_str().unwrap_or_default()
            ) == user
        }
        _ => false,
    };
    let mut rules = Vec::new();
    for binding in objects {
        let kind = binding["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
            continue;
        }
        let subjects = binding["subjects"].as_array().expect("subjects");
        if !subjects.iter().any(names_user) {
            continue;
        }
        let ns = binding["metadata"]["namespace"].as_str();
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let role_ns = if role_kind == "Role" { ns } else { None };
        let scope = if kind == "RoleBinding" { ns } else { None };
        for rule in role(role_kind, role_name, role_ns)["rules"]
            .as_array()
            .expect("rules")
        {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap_or_else(|| panic!("rule without {key}: {rule}"))
                    .iter()
                    .map(|v| v.as_str().expect("string").to_string())
                    .collect()
            };
            assert_eq!(strings("apiGroups"), [""], "only the core group is needed");
            let verbs = strings("verbs");
            let verbs: Vec<&str> = verbs.iter().map(String::as_str).collect();
            for resource in strings("resources") {
                rules.push(Rule::new(&verbs, &resource, scope));
            }
        }
    }
    rules
}

#[test]
fn full_rights_pass() {
    let h = Harness::new(cluster());
    let out = doctor(&h.kubeconfig, &[]).expect_code(0);
    assert!(
        out.stdout.contains("OK: all 5 permissions hold"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("kubeconfig {}", h.kubeconfig.display()))
    );
    assert!(
        out.stdout.contains("identity:   \"tester\""),
        "{}",
        out.stdout
    );
    assert!(
        printed_objects(&out).is_empty(),
        "no RBAC when nothing is missing"
    );

    // A narrower export needs less: the per-namespace permissions only.
    let out = doctor(&h.kubeconfig, &["--namespace", "team-a"]).expect_code(0);
    assert!(
        out.stdout.contains("OK: all 4 permissions hold"),
        "{}",
        out.stdout
    );
}

#[test]
fn no_rights_print_rbac_that_makes_doctor_pass() {
    let h = Harness::new(cluster());
    let kubeconfig = h.add_user("nobody", Vec::new());
    let out = doctor(&kubeconfig, &[]).expect_code(1);
    for what in [
        "MISSING  list namespaces at cluster scope",
        "MISSING  get namespaces in all namespaces (cluster scope)",
        "MISSING  list pods in all namespaces (cluster scope)",
        "MISSING  get pods in all namespaces (cluster scope)",
        "MISSING  get pods/log in all namespaces (cluster scope)",
        "FAIL: 5 of 5 permissions are missing for User \"nobody\"",
    ] {
        assert!(
            out.stdout.contains(what),
            "missing {what:?} in:\n{}",
            out.stdout
        );
    }
    let objects = printed_objects(&out);
    assert_eq!(kinds(&objects), ["ClusterRole", "ClusterRoleBinding"]);
    assert_eq!(objects[1]["subjects"][0]["kind"], "User");
    assert_eq!(objects[1]["subjects"][0]["name"], "nobody");

    h.server
        .add_user("nobody", "tok-nobody-1234", rules_for("nobody", &objects));
    let out = doctor(&kubeconfig, &[]).expect_code(0);
    assert!(
        out.stdout.contains("OK: all 5 permissions hold"),
        "{}",
        out.stdout
    );
    // ... and the export itself now runs.
    let mut export = exporter();
    export
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--output")
        .arg(h.out());
    export.expect_code(0);
}

#[test]
fn namespace_rights_get_a_role_per_missing_namespace() {
    let h = Harness::new(cluster());
    let kubeconfig = h.add_user("team-a-dev", namespace_rules("team-a"));

    // Their own namespace: nothing missing.
    doctor(&kubeconfig, &["--namespace", "team-a"]).expect_code(0);

    // A second namespace: a Role + RoleBinding there, nothing cluster-wide.
    let out = doctor(&kubeconfig, &["--namespace", "team-a,team-b"]).expect_code(1);
    assert!(
        out.stdout
            .contains("ok       list pods in namespace team-a"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("MISSING  list pods in namespace team-b"),
        "{}",
        out.stdout
    );
    let objects = printed_objects(&out);
    assert_eq!(kinds(&objects), ["Role", "RoleBinding"], "{}", out.stdout);
    assert_eq!(objects[0]["metadata"]["namespace"], "team-b");
    assert_eq!(objects[1]["metadata"]["namespace"], "team-b");

    let mut rules = namespace_rules("team-a");
    rules.extend(rules_for("team-a-dev", &objects));
    h.server
        .add_user("team-a-dev", "tok-team-a-dev-1234", rules);
    doctor(&kubeconfig, &["--namespace", "team-a,team-b"]).expect_code(0);

    // All namespaces need a ClusterRole; doctor says a narrower export is possible.
    let out = doctor(&kubeconfig, &[]).expect_code(1);
    assert!(
        out.stdout
            .contains("MISSING  list namespaces at cluster scope")
    );
    assert!(out.stdout.contains("--namespace NS"), "{}", out.stdout);
    assert_eq!(
        kinds(&printed_objects(&out)),
        ["ClusterRole", "ClusterRoleBinding"]
    );
}

/// In a pod: the ServiceAccount folder, `KUBERNETES_SERVICE_*`, and a
/// binding whose subject is the ServiceAccount with its namespace.
#[test]
fn in_cluster_service_account_gets_a_binding_naming_it() {
    let h = Harness::new(cluster());
    let user = "system:serviceaccount:log-exporter:log-exporter";
    h.server.add_user(user, "tok-sa-5678", Vec::new());
    let sa_dir = h.dir.path().join("serviceaccount");
    std::fs::create_dir_all(&sa_dir).unwrap();
    h.server
        .write_service_account_dir(&sa_dir, user, "log-exporter");
    let in_cluster = || {
        let mut cmd = exporter();
        cmd.arg("doctor")
            .arg("--service-account-dir")
            .arg(&sa_dir)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env(
                "KUBERNETES_SERVICE_PORT",
                h.server.addr().port().to_string(),
            );
        cmd
    };

    let out = in_cluster().expect_code(1);
    assert!(
        out.stdout.contains("connection: in-cluster ServiceAccount"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("missing for ServiceAccount log-exporter in namespace log-exporter"),
        "{}",
        out.stdout
    );
    let objects = printed_objects(&out);
    let subject = &objects[1]["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], "log-exporter");
    assert_eq!(subject["namespace"], "log-exporter");

    h.server
        .add_user(user, "tok-sa-5678", rules_for(user, &objects));
    in_cluster().expect_code(0);
}
