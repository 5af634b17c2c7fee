//! Which namespaces, pods and containers a run exports. Label and field
//! selectors go to the API server; name patterns and container kinds are
//! applied here, on what the lists return.

use crate::cli::{ContainerKind, Selection};

/// Pods carrying this label are the exporter's own (the manifests set it):
/// left out unless `--include-self`.
pub const SELF_LABEL: &str = "kube-log-exporter.io/self";

/// The pod the exporter itself runs in, when it can tell.
#[derive(Debug, Clone, Default)]
pub struct OwnPod {
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl OwnPod {
    /// In a pod, HOSTNAME is the pod name and the ServiceAccount folder names the namespace.
    pub fn detect(namespace: Option<String>) -> OwnPod {
        let name = namespace
            .as_ref()
            .and_then(|_| std::env::var("HOSTNAME").ok())
            .filter(|h| !h.is_empty());
        OwnPod { namespace, name }
    }
}

impl Selection {
    pub fn namespace_wanted(&self, namespace: &str) -> bool {
        !self
            .exclude_namespaces
            .iter()
            .any(|re| re.is_match(namespace))
    }

    pub fn pod_wanted(
        &self,
        namespace: &str,
        name: &str,
        labels_have_self: bool,
        own: &OwnPod,
    ) -> bool {
        if let Some(re) = &self.pod
            && !re.is_match(name)
        {
            return false;
        }
        if self.exclude_pods.iter().any(|re| re.is_match(name)) {
            return false;
        }
        if !self.include_self {
            if labels_have_self {
                return false;
            }
            if own.namespace.as_deref() == Some(namespace) && own.name.as_deref() == Some(name) {
                return false;
            }
        }
        true
    }

    pub fn container_wanted(&self, name: &str, kind: ContainerKind) -> bool {
        self.container_kinds.contains(&kind)
            && self.container.as_ref().is_none_or(|re| re.is_match(name))
            && !self.exclude_containers.iter().any(|re| re.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn selection() -> Selection {
        Selection {
            namespaces: vec![],
            exclude_namespaces: vec![Regex::new("^(?:kube-.*)$").unwrap()],
            pod: None,
            exclude_pods: vec![Regex::new("^(?:debug-.*)$").unwrap()],
            label_selector: None,
            field_selector: None,
            container: None,
            exclude_containers: vec![Regex::new("^(?:istio-proxy)$").unwrap()],
            container_kinds: vec![ContainerKind::Regular, ContainerKind::Init],
            include_self: false,
        }
    }

    #[test]
    fn filters_apply() {
        let s = selection();
        let own = OwnPod {
            namespace: Some("log-exporter".into()),
            name: Some("exporter-abc".into()),
        };
        assert!(!s.namespace_wanted("kube-system"));
        assert!(s.namespace_wanted("default"));
        assert!(!s.pod_wanted("default", "debug-1", false, &own));
        assert!(s.pod_wanted("default", "web-1", false, &own));
        assert!(!s.pod_wanted("default", "web-1", true, &own), "own label");
        assert!(
            !s.pod_wanted("log-exporter", "exporter-abc", false, &own),
            "own pod"
        );
        assert!(!s.container_wanted("istio-proxy", ContainerKind::Regular));
        assert!(!s.container_wanted("debugger", ContainerKind::Ephemeral));
        assert!(s.container_wanted("app", ContainerKind::Init));
    }

    #[test]
    fn include_self_keeps_own_pods() {
        let s = Selection {
            include_self: true,
            ..selection()
        };
        assert!(s.pod_wanted("default", "web-1", true, &OwnPod::default()));
    }
}
