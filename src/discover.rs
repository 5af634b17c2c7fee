//! Paged lists -> a stream of `Target`s (one pod container instance each).
//!
//! Namespaces and pods are listed with `limit`/`continue` (500 a page); each
//! page's targets are sent on as soon as it arrives, so exporting starts
//! while the listing goes on. Only what the export needs is kept of a Pod.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kube::api::ListParams;
use kube::core::Request;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::{ApiClient, ApiError};
use crate::cli::{ContainerKind, Selection};
use crate::error::Result;
use crate::select::{OwnPod, SELF_LABEL};

pub const PAGE_SIZE: u32 = 500;

/// The pod a target belongs to (shared by its containers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Instance {
    /// The running (or last) instance of the container.
    Current,
    /// The instance before the last restart (`previous=true`).
    Previous,
}

/// One log to export: a pod container instance.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod: Arc<PodRef>,
    pub container: String,
    pub kind: ContainerKind,
    pub instance: Instance,
    /// The runtime's id of this instance, when the pod status has it.
    pub container_id: Option<String>,
    /// The id of the container's other instance the API shows (current <-> previous).
    pub other_instance_id: Option<String>,
    pub restart_count: i32,
}

impl Target {
    /// File name inside `<namespace>/<pod>/`.
    pub fn file_name(&self) -> String {
        match self.instance {
            Instance::Current => format!("{}.log.gz", self.container),
            Instance::Previous => format!("{}.previous.log.gz", self.container),
        }
    }
}

/// What became of one namespace's listing.
#[derive(Debug, Clone)]
pub struct NamespaceListing {
    pub name: String,
    pub pods: u64,
    pub targets: u64,
    /// Why the namespace could not be listed (Forbidden, ...).
    pub error: Option<String>,
}

#[derive(Debug)]
pub enum Discovered {
    Target(Target),
    Namespace(NamespaceListing),
}

pub struct Discovery {
    pub api: ApiClient,
    pub selection: Arc<Selection>,
    pub own_pod: OwnPod,
}

impl Discovery {
    /// List everything selected, sending targets as pages arrive. An error
    /// return means the run cannot know what to export (exit 1).
    pub async fn run(self, tx: mpsc::Sender<Discovered>) -> Result<()> {
        let namespaces = if self.selection.namespaces.is_empty() {
            self.list_namespaces().await?
        } else {
            self.selection.namespaces.clone()
        };
        for namespace in namespaces
            .into_iter()
            .filter(|ns| self.selection.namespace_wanted(ns))
        {
            let listing = self.list_pods(&namespace, &tx).await?;
            if tx.send(Discovered::Namespace(listing)).await.is_err() {
                break; // the export stopped listening (deadline / signal)
            }
        }
        Ok(())
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Namespace {
            metadata: Named,
        }
        let mut pager = Pager::new(
            &self.api,
            Request::new("/api/v1/namespaces"),
            ListParams::default(),
        );
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        loop {
            match pager.next::<Namespace>().await {
                Ok(Some(items)) => names.extend(
                    items
                        .into_iter()
                        .map(|ns| ns.metadata.name)
                        .filter(|name| seen.insert(name.clone())),
                ),
                Ok(None) => return Ok(names),
                Err(ApiError::Status(f)) => {
                    return Err(f.into_error(self.api.server(), "list", "namespaces", None));
                }
                Err(ApiError::Transport(e)) => return Err(e),
            }
        }
    }

    async fn list_pods(
        &self,
        namespace: &str,
        tx: &mpsc::Sender<Discovered>,
    ) -> Result<NamespaceListing> {
        let mut params = ListParams::default();
        if let Some(labels) = &self.selection.label_selector {
            params = params.labels(labels);
        }
        if let Some(fields) = &self.selection.field_selector {
            params = params.fields(fields);
        }
        let mut pager = Pager::new(
            &self.api,
            Request::new(format!("/api/v1/namespaces/{namespace}/pods")),
            params,
        );
        let mut listing = NamespaceListing {
            name: namespace.to_string(),
            pods: 0,
            targets: 0,
            error: None,
        };
        // A list restarted after an expired continue token returns pods again.
        let mut seen = HashSet::new();
        loop {
            let items = match pager.next::<Pod>().await {
                Ok(Some(items)) => items,
                Ok(None) => break,
                Err(ApiError::Status(failure)) if failure.code == 401 => {
                    return Err(failure.into_error(
                        self.api.server(),
                        "list",
                        "pods",
                        Some(namespace),
                    ));
                }
                Err(ApiError::Status(failure)) => {
                    tracing::warn!(
                        namespace,
                        code = failure.code,
                        "cannot list pods: {}",
                        failure.message
                    );
                    listing.error = Some(failure.message);
                    break;
                }
                Err(ApiError::Transport(err)) => {
                    tracing::warn!(namespace, "cannot list pods: {err}");
                    listing.error = Some(err.to_string());
                    break;
                }
            };
            for pod in items {
                if !seen.insert(pod.metadata.uid.clone()) {
                    continue;
                }
                let Some(targets) = self.targets_of(pod) else {
                    continue;
                };
                listing.pods += 1;
                listing.targets += targets.len() as u64;
                for target in targets {
                    if tx.send(Discovered::Target(target)).await.is_err() {
                        return Ok(listing); // the export stopped listening
                    }
                }
            }
        }
        Ok(listing)
    }

    /// The targets of one listed pod, or None if the pod is not selected.
    fn targets_of(&self, pod: Pod) -> Option<Vec<Target>> {
        let Pod {
            metadata,
            spec,
            status,
        } = pod;
        let has_self_label = metadata.labels.contains_key(SELF_LABEL);
        if !self.selection.pod_wanted(
            &metadata.namespace,
            &metadata.name,
            has_self_label,
            &self.own_pod,
        ) {
            return None;
        }
        // Names become folder names: a Kubernetes name never holds '/' or is
        // '..', but a misbehaving server or proxy must not write outside the run.
        if !safe_file_name(&metadata.namespace) || !safe_file_name(&metadata.name) {
            tracing::warn!(namespace = %metadata.namespace, pod = %metadata.name, "left out: the name cannot be a folder name");
            return None;
        }
        let pod_ref = Arc::new(PodRef {
            namespace: metadata.namespace,
            name: metadata.name,
            uid: metadata.uid,
        });
        let kinds = [
            (
                ContainerKind::Init,
                spec.init_containers,
                status.init_container_statuses,
            ),
            (
                ContainerKind::Regular,
                spec.containers,
                status.container_statuses,
            ),
            (
                ContainerKind::Ephemeral,
                spec.ephemeral_containers,
                status.ephemeral_container_statuses,
            ),
        ];
        let mut targets = Vec::new();
        for (kind, containers, statuses) in kinds {
            for container in containers {
                if !self.selection.container_wanted(&container.name, kind) {
                    continue;
                }
                if !safe_file_name(&container.name) {
                    tracing::warn!(pod = %pod_ref.name, container = %container.name, "left out: the name cannot be a file name");
                    continue;
                }
                let status = statuses.iter().find(|s| s.name == container.name);
                let restart_count = status.map_or(0, |s| s.restart_count);
                let previous = status
                    .and_then(|s| s.last_state.as_ref())
                    .and_then(|s| s.terminated.as_ref());
                let previous_id = previous
                    .and_then(|t| t.container_id.clone())
                    .filter(|id| !id.is_empty());
                let current_id = status
                    .and_then(|s| s.container_id.clone())
                    .filter(|id| !id.is_empty());
                if restart_count > 0 || previous.is_some() {
                    targets.push(Target {
                        pod: pod_ref.clone(),
                        container: container.name.clone(),
                        kind,
                        instance: Instance::Previous,
                        container_id: previous_id.clone(),
                        other_instance_id: current_id.clone(),
                        restart_count,
                    });
                }
                targets.push(Target {
                    pod: pod_ref.clone(),
                    container: container.name,
                    kind,
                    instance: Instance::Current,
                    container_id: current_id,
                    other_instance_id: previous_id,
                    restart_count,
                });
            }
        }
        Some(targets)
    }
}

/// Whether a name from the API can be used as one path component.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
}

/// How many times one list may restart after 410 Gone before giving up.
const MAX_LIST_RESTARTS: u32 = 5;

/// A paged list: pages until `continue` is empty, restarting the list when
/// the server says the continue token expired (410 Gone).
struct Pager<'a> {
    api: &'a ApiClient,
    request: Request,
    params: ListParams,
    continue_token: Option<String>,
    restarts: u32,
    done: bool,
}

impl<'a> Pager<'a> {
    fn new(api: &'a ApiClient, request: Request, params: ListParams) -> Self {
        Pager {
            api,
            request,
            params,
            continue_token: None,
            restarts: 0,
            done: false,
        }
    }

    async fn next<T: serde::de::DeserializeOwned>(
        &mut self,
    ) -> std::result::Result<Option<Vec<T>>, ApiError> {
        #[derive(Deserialize)]
        struct List<T> {
            #[serde(default)]
            metadata: ListMeta,
            #[serde(default = "Vec::new")]
            items: Vec<T>,
        }
        #[derive(Deserialize, Default)]
        struct ListMeta {
            #[serde(rename = "continue", default)]
            continue_token: Option<String>,
        }
        loop {
            if self.done {
                return Ok(None);
            }
            let mut params = self.params.clone().limit(PAGE_SIZE);
            if let Some(token) = &self.continue_token {
                params = params.continue_token(token);
            }
            let request = &self.request;
            // Building a list request fails only on invalid params, which we never make.
            let page = self
                .api
                .get_json::<List<T>>(|| request.list(&params).unwrap_or_default())
                .await;
            match page {
                Err(ApiError::Status(failure))
                    if failure.code == 410
                        && self.continue_token.is_some()
                        && self.restarts < MAX_LIST_RESTARTS =>
                {
                    self.restarts += 1;
                    tracing::info!(
                        "the list's continue token expired; listing again from the start"
                    );
                    self.continue_token = None;
                }
                Err(e) => return Err(e),
                Ok(page) => {
                    // An empty continue means the last page, like an absent one.
                    self.continue_token = page.metadata.continue_token.filter(|t| !t.is_empty());
                    self.done = self.continue_token.is_none();
                    return Ok(Some(page.items));
                }
            }
        }
    }
}

// Slim views of the API's JSON: serde skips every field not named here.

#[derive(Deserialize)]
struct Pod {
    metadata: PodMeta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize)]
struct PodMeta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Named>,
    #[serde(default)]
    init_containers: Vec<Named>,
    #[serde(default)]
    ephemeral_containers: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(rename = "containerID", default)]
    container_id: Option<String>,
    #[serde(default)]
    restart_count: i32,
    #[serde(default)]
    last_state: Option<ContainerState>,
}

#[derive(Deserialize)]
struct ContainerState {
    #[serde(default)]
    terminated: Option<Terminated>,
}

#[derive(Deserialize)]
struct Terminated {
    #[serde(rename = "containerID", default)]
    container_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn names_that_would_leave_the_run_folder_are_refused() {
        for bad in ["", ".", "..", "../etc", "a/b", ".hidden", "a\\b", "nul\0"] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
        for good in ["web-0", "kube-system", "app.v2", "c0"] {
            assert!(safe_file_name(good), "{good:?}");
        }
    }
}
