//! Which namespaces, pods and containers a run exports. Label and field
//! selectors go to the API server; name patterns and container kinds are
//! applied here, on what the lists return.

use crate::cli::{ContainerKind, Selection};

/// Pods carrying this label are the exporter's own (the manifests set it):
/// left out unless `--include-self`.
pub const SELF_LABEL: &str = "kube-log-exporter.io/self";

/// One shard of an Indexed Job: the pods whose `namespace/name` hashes to
/// `index` modulo `count`. The hash is FNV-1a 64 with its standard
/// constants: the same answer on every machine and every version, and a
/// pod's shard never depends on which other pods exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn of(namespace: &str, pod: &str, count: u32) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(pod.bytes())
        {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % count.max(1) as u64) as u32
    }

    pub fn owns(&self, namespace: &str, pod: &str) -> bool {
        Shard::of(namespace, pod, self.count) == self.index
    }

    /// `-<i>-of-<n>`, appended to the names of the files each shard owns.
    pub fn suffix(&self) -> String {
        format!("-{}-of-{}", self.index, self.count)
    }
}

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
        if let Some(shard) = &self.shard
            && !shard.owns(namespace, name)
        {
            return false;
        }
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
            shard: None,
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

    /// Golden values: a change here would move pods between shards on upgrade.
    #[test]
    fn shard_hash_is_stable() {
        // Checked against an independent FNV-1a 64 (0x2019a4a4401b52d6, 0x9d142a813bdca48d).
        assert_eq!(Shard::of("default", "web-0", 4), 2);
        assert_eq!(Shard::of("kube-system", "coredns-5d78c9869d-abcde", 4), 1);
        assert_eq!(Shard::of("ns-0", "pod-0", 1), 0);
        let counts = (0..4000).fold([0u32; 4], |mut acc, i| {
            acc[Shard::of("ns", &format!("pod-{i}"), 4) as usize] += 1;
            acc
        });
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
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
