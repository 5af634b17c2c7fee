//! The manifests under `manifests/`, as `kubectl kustomize` renders them
//! (what `kubectl apply -k` installs), checked against the exporter itself:
//! - the ClusterRole and the namespaced Role grant exactly the permissions of
//!   `permissions.rs` (no more, no less, no wildcards), bound to the
//!   ServiceAccount with its namespace;
//! - the container args and env parse and validate with the exporter's own
//!   flag parser, and the time limits nest (deadline + grace < Job deadline);
//! - the pod meets the "restricted" Pod Security profile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use kube_log_exporter::cli::{Cli, Config};
use kube_log_exporter::permissions::{PERMISSIONS, Scope};
use kube_log_exporter::select::SELF_LABEL;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The objects of one kustomization: `manifests/<dir>` rendered now with
/// `kubectl kustomize` (as scripts/check-manifests.sh does), so the test can
/// never check a stale rendering. Without kubectl, the script's output in
/// target/manifests/<name>.yaml is used if it is newer than every manifest.
fn rendered(dir: &str, name: &str) -> Vec<Value> {
    let source = repo().join("manifests").join(dir);
    let yaml = match Command::new("kubectl")
        .arg("kustomize")
        .arg(&source)
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).expect("UTF-8 YAML"),
        Ok(out) => panic!(
            "kubectl kustomize {} failed: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            let file = repo().join("target/manifests").join(format!("{name}.yaml"));
            assert!(
                newer_than_manifests(&file),
                "kubectl is not available ({e}) and {} is missing or older than manifests/; install kubectl or run scripts/check-manifests.sh",
                file.display()
            );
            std::fs::read_to_string(&file).expect("read rendered manifests")
        }
    };
    let objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(&yaml)
        .unwrap_or_else(|e| panic!("rendered {dir} is not YAML: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect();
    assert!(!objects.is_empty(), "{dir} rendered no object");
    objects
}

fn newer_than_manifests(file: &Path) -> bool {
    fn newest(dir: &Path) -> std::time::SystemTime {
        let mut t = std::time::UNIX_EPOCH;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let m = if path.is_dir() {
                newest(&path)
            } else {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH)
            };
            t = t.max(m);
        }
        t
    }
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= newest(&repo().join("manifests")))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// (group, resource, verb) of every rule, with wildcards refused.
fn granted(role: &Value) -> BTreeSet<(String, String, String)> {
    let name = &role["metadata"]["name"];
    let mut set = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for key in ["resourceNames", "nonResourceURLs"] {
            assert!(
                rule.get(key).is_none(),
                "{name}: unexpected {key} in {rule}"
            );
        }
        let (groups, resources, verbs) = (
            strings(&rule["apiGroups"]),
            strings(&rule["resources"]),
            strings(&rule["verbs"]),
        );
        for item in groups.iter().chain(&resources).chain(&verbs) {
            assert!(!item.contains('*'), "{name}: wildcard {item:?} in {rule}");
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    set.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    set
}

fn needed(scope: Option<Scope>) -> BTreeSet<(String, String, String)> {
    PERMISSIONS
        .iter()
        .filter(|p| scope.is_none_or(|s| p.scope == s))
        .map(|p| (p.group.into(), p.resource.into(), p.verb.into()))
        .collect()
}

fn service_account(objects: &[Value]) -> (String, String) {
    let sa = one(objects, "ServiceAccount");
    assert_eq!(
        sa["automountServiceAccountToken"], false,
        "the account mounts no token by default; the exporter's pod opts in"
    );
    (
        sa["metadata"]["namespace"]
            .as_str()
            .expect("SA namespace")
            .into(),
        sa["metadata"]["name"].as_str().expect("SA name").into(),
    )
}

fn assert_binds_service_account(
    binding: &Value,
    role_kind: &str,
    role_name: &str,
    sa: &(String, String),
) {
    assert_eq!(binding["roleRef"]["kind"], role_kind);
    assert_eq!(binding["roleRef"]["name"], role_name);
    assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(
        subjects.len(),
        1,
        "one subject: the exporter's ServiceAccount"
    );
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], sa.1.as_str());
    // Without its namespace a ServiceAccount subject is rejected (or, in a
    // RoleBinding, silently means the binding's namespace).
    assert_eq!(
        subjects[0]["namespace"],
        sa.0.as_str(),
        "subject names the SA's namespace"
    );
}

#[test]
fn cluster_role_grants_exactly_what_the_export_needs() {
    for (dir, name) in [("base", "base"), ("", "top")] {
        let objects = rendered(dir, name);
        let role = one(&objects, "ClusterRole");
        assert_eq!(
            granted(role),
            needed(None),
            "manifests/{dir}: the ClusterRole must grant exactly permissions.rs's list"
        );
        let sa = service_account(&objects);
        let binding = one(&objects, "ClusterRoleBinding");
        let role_name = role["metadata"]["name"].as_str().unwrap();
        assert_binds_service_account(binding, "ClusterRole", role_name, &sa);
        assert!(
            of_kind(&objects, "Role").is_empty() && of_kind(&objects, "RoleBinding").is_empty()
        );
    }
}

#[test]
fn namespaced_role_grants_exactly_the_namespace_permissions() {
    let objects = rendered("overlays/namespaced", "namespaced");
    for kind in ["ClusterRole", "ClusterRoleBinding", "Namespace"] {
        assert!(
            of_kind(&objects, kind).is_empty(),
            "a namespace admin cannot create a {kind}"
        );
    }
    let role = one(&objects, "Role");
    assert_eq!(granted(role), needed(Some(Scope::Namespace)));
    let sa = service_account(&objects);
    assert_eq!(role["metadata"]["namespace"], sa.0.as_str());
    let binding = one(&objects, "RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], sa.0.as_str());
    assert_binds_service_account(
        binding,
        "Role",
        role["metadata"]["name"].as_str().unwrap(),
        &sa,
    );

    // The exporter is told to read that namespace only (listing all namespaces
    // needs a ClusterRole).
    let (_, config) = exporter_config(pod_template(one(&objects, "CronJob")));
    assert_eq!(config.selection.namespaces, std::slice::from_ref(&sa.0));
}

/// The pod template of a CronJob or Job.
fn pod_template(workload: &Value) -> &Value {
    match workload["kind"].as_str() {
        Some("CronJob") => &workload["spec"]["jobTemplate"]["spec"]["template"],
        Some("Job") => &workload["spec"]["template"],
        other => panic!("not a workload: {other:?}"),
    }
}

fn exporter_container(template: &Value) -> &Value {
    template["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "kube-log-exporter")
        .expect("a container named kube-log-exporter")
}

/// The container's args and `KLE_*` env, through the exporter's own parser.
/// Env values go in as the flags that read them: setting the test process's
/// environment would leak into tests running alongside.
fn exporter_config(template: &Value) -> (Vec<String>, Config) {
    let container = exporter_container(template);
    assert!(
        container.get("command").is_none(),
        "the image's ENTRYPOINT is the binary; set args only"
    );
    let mut argv = vec!["kube-log-exporter".to_string()];
    argv.extend(strings(&container["args"]));
    let flags_by_env: BTreeMap<String, String> = Cli::command()
        .get_arguments()
        .filter_map(|a| {
            Some((
                a.get_env()?.to_str()?.to_string(),
                a.get_long()?.to_string(),
            ))
        })
        .collect();
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().expect("env name");
        if !name.starts_with("KLE_") {
            continue;
        }
        let flag = flags_by_env
            .get(name)
            .unwrap_or_else(|| panic!("env {name} is read by no flag of the exporter"));
        let value = match env["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            // The Job's name, the same for every pod of one run: what a real pod gets.
            Some("metadata.labels['batch.kubernetes.io/job-name']") => "log-exporter-29123456",
            Some(other) => panic!("env {name} comes from {other}, which the test cannot check"),
            None => env["value"]
                .as_str()
                .unwrap_or_else(|| panic!("env {name} has no literal value to check")),
        };
        argv.push(format!("--{flag}={value}"));
    }
    // An Indexed Job gives each pod JOB_COMPLETION_INDEX; stand in for it.
    if argv.iter().any(|a| a.starts_with("--shard-count=")) {
        argv.push("--shard-index=0".into());
    }
    let cli = Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the manifest's args {argv:?} do not parse:\n{e}"));
    assert!(
        cli.command.is_none(),
        "the manifests run the default export command"
    );
    let config = cli
        .export
        .into_config()
        .unwrap_or_else(|e| panic!("the manifest's args {argv:?} do not validate: {e}"));
    (argv, config)
}

fn int(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not set to a number ({v})"))
}

/// Every workload in every kustomization: args parse, time limits nest, the
/// pod is restricted.
#[test]
fn workloads_parse_nest_their_deadlines_and_are_restricted() {
    let mut checked = 0;
    for (dir, name) in [
        ("base", "base"),
        ("overlays/job", "job"),
        ("overlays/namespaced", "namespaced"),
        ("overlays/sharded", "sharded"),
    ] {
        let objects = rendered(dir, name);
        let cron_args = of_kind(&objects, "CronJob")
            .first()
            .map(|c| strings(&exporter_container(pod_template(c))["args"]));
        for workload in of_kind(&objects, "CronJob")
            .into_iter()
            .chain(of_kind(&objects, "Job"))
        {
            let what = format!(
                "manifests/{dir}: {} {}",
                workload["kind"].as_str().unwrap(),
                workload["metadata"]["name"]
            );
            let template = pod_template(workload);
            let (argv, config) = exporter_config(template);
            let job_spec = match workload["kind"].as_str() {
                Some("CronJob") => {
                    check_cron_job(workload, &config, &what);
                    &workload["spec"]["jobTemplate"]["spec"]
                }
                _ => {
                    // The one-off Job is the CronJob's job: same args.
                    assert_eq!(
                        Some(strings(&exporter_container(template)["args"])),
                        cron_args,
                        "{what}: args differ from the CronJob's"
                    );
                    &workload["spec"]
                }
            };
            if let Some(shard) = config.selection.shard {
                assert_eq!(
                    job_spec["completionMode"], "Indexed",
                    "{what}: shards need an Indexed Job"
                );
                assert_eq!(
                    int(&job_spec["completions"], "completions"),
                    shard.count as u64,
                    "{what}"
                );
                assert_eq!(
                    int(&job_spec["parallelism"], "parallelism"),
                    shard.count as u64,
                    "{what}"
                );
                assert!(
                    config.run_id.is_some(),
                    "{what}: shards must agree on the run id"
                );
            }
            check_time_limits(job_spec, &config, &what);
            check_restricted(&template["spec"], &what);
            let labels = &template["metadata"]["labels"];
            assert_eq!(
                labels[SELF_LABEL], "true",
                "{what}: the pod carries {SELF_LABEL}, so a run leaves its own log out"
            );
            assert!(
                argv.iter().any(|a| a == "--log-format=json"),
                "{what}: JSON logs"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected CronJobs and a Job, checked {checked}"
    );
}

fn check_cron_job(cron: &Value, config: &Config, what: &str) {
    let spec = &cron["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Forbid", "{what}");
    assert_eq!(spec["timeZone"], "Etc/UTC", "{what}");
    int(&spec["startingDeadlineSeconds"], "startingDeadlineSeconds");
    int(
        &spec["successfulJobsHistoryLimit"],
        "successfulJobsHistoryLimit",
    );
    int(&spec["failedJobsHistoryLimit"], "failedJobsHistoryLimit");
    let job = &spec["jobTemplate"]["spec"];
    assert!(
        int(&job["backoffLimit"], "backoffLimit") <= 3,
        "{what}: small backoffLimit"
    );
    int(&job["ttlSecondsAfterFinished"], "ttlSecondsAfterFinished");
    // A run must be over before the next one is due: hourly schedules ("M * * * *").
    let schedule = spec["schedule"].as_str().expect("schedule");
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() == 5 && fields[0].parse::<u32>().is_ok() && fields[1..] == ["*", "*", "*", "*"]
    {
        let active = int(&job["activeDeadlineSeconds"], "activeDeadlineSeconds");
        assert!(
            active < 3600,
            "{what}: activeDeadlineSeconds {active} is not below the hourly period"
        );
    }
    assert!(
        config.deadline.is_some(),
        "{what}: the exporter needs its own --deadline"
    );
}

/// exporter --deadline + --shutdown-grace < activeDeadlineSeconds, and the
/// grace < terminationGracePeriodSeconds, so the exporter always ends its
/// run itself (manifest written) before Kubernetes kills it.
fn check_time_limits(job_spec: &Value, config: &Config, what: &str) {
    let active = Duration::from_secs(int(
        &job_spec["activeDeadlineSeconds"],
        "activeDeadlineSeconds",
    ));
    let termination = Duration::from_secs(int(
        &job_spec["template"]["spec"]["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    ));
    let deadline = config
        .deadline
        .unwrap_or_else(|| panic!("{what}: no --deadline in the args"));
    assert!(
        deadline + config.shutdown_grace < active,
        "{what}: --deadline {deadline:?} + --shutdown-grace {:?} must end before activeDeadlineSeconds {active:?}",
        config.shutdown_grace
    );
    assert!(
        config.shutdown_grace < termination,
        "{what}: --shutdown-grace {:?} must be below terminationGracePeriodSeconds {termination:?}",
        config.shutdown_grace
    );
}

/// The "restricted" Pod Security Standard items of issue 3, plus its
/// host-namespace and volume-type rules.
fn check_restricted(pod: &Value, what: &str) {
    let sc = &pod["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
    assert_ne!(sc["runAsUser"], 0, "{what}: not UID 0");
    assert!(sc["runAsUser"].as_u64().is_some(), "{what}: a fixed UID");
    assert!(sc["runAsGroup"].as_u64().is_some(), "{what}: a fixed GID");
    assert!(
        sc["fsGroup"].as_u64().is_some(),
        "{what}: fsGroup so the volume is writable"
    );
    assert_eq!(
        sc["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: seccomp"
    );
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[key], true, "{what}: {key}");
    }
    assert_eq!(pod["restartPolicy"], "Never", "{what}");
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "{what}: the pod opts in to its token"
    );
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let types: Vec<&String> = volume
            .as_object()
            .expect("volume")
            .keys()
            .filter(|k| *k != "name")
            .collect();
        for t in types {
            assert!(
                allowed_volumes.contains(&t.as_str()),
                "{what}: volume type {t}"
            );
        }
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten());
    for c in containers {
        let name = &c["name"];
        let csc = &c["securityContext"];
        assert_eq!(
            csc["allowPrivilegeEscalation"], false,
            "{what}: {name} allowPrivilegeEscalation"
        );
        assert_eq!(
            csc["readOnlyRootFilesystem"], true,
            "{what}: {name} readOnlyRootFilesystem"
        );
        assert_ne!(csc["privileged"], true, "{what}: {name} privileged");
        assert_ne!(csc["runAsNonRoot"], false, "{what}: {name} runAsNonRoot");
        assert_ne!(csc["runAsUser"], 0, "{what}: {name} runAsUser");
        assert_eq!(
            strings(&csc["capabilities"]["drop"]),
            ["ALL"],
            "{what}: {name} drops ALL capabilities"
        );
        assert!(
            strings(&csc["capabilities"]["add"])
                .iter()
                .all(|cap| cap == "NET_BIND_SERVICE"),
            "{what}: {name} adds capabilities"
        );
        if let Some(t) = csc["seccompProfile"]["type"].as_str() {
            assert_eq!(t, "RuntimeDefault", "{what}: {name} seccomp");
        }
        let resources = &c["resources"];
        assert!(
            resources["requests"]["memory"].is_string(),
            "{what}: {name} memory request"
        );
        assert!(
            resources["limits"]["memory"].is_string(),
            "{what}: {name} memory limit"
        );
    }
}
