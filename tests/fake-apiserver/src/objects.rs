//! JSON shapes of the objects served: Pod, Namespace, lists and `Status`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::cluster::{Container, ContainerKind, ContainerState, Pod};

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn image_of(c: &Container) -> String {
    match c.kind {
        ContainerKind::Init => "registry.example/init:1.0".to_string(),
        ContainerKind::Ephemeral => "busybox:1.36".to_string(),
        ContainerKind::Regular => format!("registry.example/{}:1.0", c.name),
    }
}

fn spec_entry(c: &Container) -> Value {
    json!({"name": c.name, "image": image_of(c), "imagePullPolicy": "IfNotPresent"})
}

fn container_status(c: &Container) -> Value {
    let started = rfc3339(c.log.start);
    let state = match &c.state {
        ContainerState::Running => json!({"running": {"startedAt": started}}),
        ContainerState::Waiting { reason } => json!({"waiting": {"reason": reason}}),
        ContainerState::Terminated { exit_code } => json!({"terminated": {
            "exitCode": exit_code,
            "reason": if *exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": started,
            "finishedAt": rfc3339(c.log.end_time()),
            "containerID": c.container_id,
        }}),
    };
    let last_state = match &c.previous {
        Some(prev) => json!({"terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": rfc3339(prev.start),
            "finishedAt": rfc3339(prev.end_time()),
            "containerID": crate::cluster::container_id_for(prev.seed, (c.restart_count.max(1) - 1) as u64),
        }}),
        None => json!({}),
    };
    let running = matches!(c.state, ContainerState::Running);
    let mut s = json!({
        "name": c.name,
        "state": state,
        "lastState": last_state,
        "ready": running && c.kind == ContainerKind::Regular,
        "restartCount": c.restart_count,
        "image": image_of(c),
        "imageID": "",
        "started": running,
    });
    if !c.container_id.is_empty() {
        s["containerID"] = json!(c.container_id);
        s["imageID"] = json!(format!(
            "{}@sha256:{}",
            image_of(c),
            &c.container_id[c.container_id.len() - 64..]
        ));
    }
    s
}

/// A Pod as it appears in a list (`with_kind` adds kind/apiVersion for a GET).
pub fn pod_json(p: &Pod, resource_version: u64, with_kind: bool) -> Value {
    let of = |k: ContainerKind| -> Vec<&Container> {
        p.containers.iter().filter(|c| c.kind == k).collect()
    };
    let created = p
        .containers
        .iter()
        .map(|c| c.previous.as_ref().unwrap_or(&c.log).start)
        .min()
        .unwrap_or_else(Utc::now);
    let mut spec = Map::new();
    spec.insert(
        "containers".into(),
        of(ContainerKind::Regular)
            .into_iter()
            .map(spec_entry)
            .collect(),
    );
    let init = of(ContainerKind::Init);
    if !init.is_empty() {
        spec.insert(
            "initContainers".into(),
            init.into_iter().map(spec_entry).collect(),
        );
    }
    let eph = of(ContainerKind::Ephemeral);
    if !eph.is_empty() {
        spec.insert(
            "ephemeralContainers".into(),
            eph.into_iter().map(spec_entry).collect(),
        );
    }
    spec.insert("restartPolicy".into(), json!("Always"));
    spec.insert("serviceAccountName".into(), json!("default"));
    if let Some(n) = &p.node_name {
        spec.insert("nodeName".into(), json!(n));
    }
    let mut status = Map::new();
    status.insert("phase".into(), json!(p.phase));
    let mut put = |key: &str, kind: ContainerKind| {
        let v: Vec<Value> = p
            .containers
            .iter()
            .filter(|c| c.kind == kind)
            .map(container_status)
            .collect();
        if !v.is_empty() {
            status.insert(key.into(), Value::Array(v));
        }
    };
    put("initContainerStatuses", ContainerKind::Init);
    put("containerStatuses", ContainerKind::Regular);
    put("ephemeralContainerStatuses", ContainerKind::Ephemeral);
    if p.node_name.is_some() {
        status.insert("startTime".into(), json!(rfc3339(created)));
    }
    let mut v = json!({
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "uid": p.uid,
            "resourceVersion": resource_version.to_string(),
            "creationTimestamp": rfc3339(created),
            "labels": p.labels,
        },
        "spec": spec,
        "status": status,
    });
    if with_kind {
        let m = v.as_object_mut().unwrap();
        let mut out = Map::new();
        out.insert("kind".into(), json!("Pod"));
        out.insert("apiVersion".into(), json!("v1"));
        out.append(m);
        v = Value::Object(out);
    }
    v
}

pub fn namespace_json(name: &str, resource_version: u64, with_kind: bool) -> Value {
    let mut v = json!({
        "metadata": {
            "name": name,
            "uid": crate::cluster::uid_for("", name),
            "resourceVersion": resource_version.to_string(),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    if with_kind {
        let mut out = Map::new();
        out.insert("kind".into(), json!("Namespace"));
        out.insert("apiVersion".into(), json!("v1"));
        out.append(v.as_object_mut().unwrap());
        v = Value::Object(out);
    }
    v
}

/// `{"kind":"PodList","apiVersion":"v1","metadata":{...},"items":[...]}`;
/// `continue` and `remainingItemCount` only when set (omitempty).
pub fn list_json(
    kind: &str,
    rv: u64,
    cont: Option<&str>,
    remaining: Option<u64>,
    items: Vec<Value>,
) -> Value {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(r) = remaining {
        meta.insert("remainingItemCount".into(), json!(r));
    }
    json!({"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items})
}

/// A failure `Status` like `apierrors.StatusError` renders it.
pub fn status_json(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v["code"] = json!(code);
    v
}
