//! The one list of API permissions an export needs. `doctor` checks it,
//! the export's 403 sentences point at it, and a test checks that the RBAC
//! in `manifests/` grants exactly it: a new API call without an RBAC change
//! fails CI, not a production run.

/// Where a permission must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Cluster-wide only (a ClusterRole bound by a ClusterRoleBinding).
    Cluster,
    /// In each exported namespace (a Role there is enough), or cluster-wide
    /// when every namespace is exported.
    Namespace,
}

/// One RBAC permission: a verb on a resource of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub verb: &'static str,
    /// API group; "" is the core group.
    pub group: &'static str,
    /// As RBAC rules write it: "pods", or "pods/log" for a subresource.
    pub resource: &'static str,
    pub scope: Scope,
    /// What the export does with it, for doctor's report.
    pub why: &'static str,
}

impl Permission {
    /// The resource without its subresource ("pods" of "pods/log").
    pub fn base_resource(&self) -> &'static str {
        self.resource_parts().0
    }

    /// The subresource, if any ("log" of "pods/log").
    pub fn subresource(&self) -> Option<&'static str> {
        self.resource_parts().1
    }

    fn resource_parts(&self) -> (&'static str, Option<&'static str>) {
        match self.resource.split_once('/') {
            Some((base, sub)) => (base, Some(sub)),
            None => (self.resource, None),
        }
    }
}

/// Every permission an export can use. `list namespaces` is needed only
/// when no `--namespace` is given (the export then lists them all).
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        verb: "list",
        group: "",
        resource: "namespaces",
        scope: Scope::Cluster,
        why: "find the namespaces to export when no --namespace is given",
    },
    Permission {
        verb: "get",
        group: "",
        resource: "namespaces",
        scope: Scope::Namespace,
        why: "read an exported namespace by name",
    },
    Permission {
        verb: "list",
        group: "",
        resource: "pods",
        scope: Scope::Namespace,
        why: "find the pods and containers to export",
    },
    Permission {
        verb: "get",
        group: "",
        resource: "pods",
        scope: Scope::Namespace,
        why: "read one pod by name",
    },
    Permission {
        verb: "get",
        group: "",
        resource: "pods/log",
        scope: Scope::Namespace,
        why: "stream a container's log",
    },
];

/// A permission as it must hold for one run: where it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub permission: Permission,
    /// `None`: at cluster scope.
    pub namespace: Option<String>,
}

impl Check {
    /// "list pods in namespace a", "list namespaces at cluster scope".
    pub fn describe(&self) -> String {
        let p = &self.permission;
        match (&self.namespace, p.scope) {
            (Some(ns), _) => format!("{} {} in namespace {ns}", p.verb, p.resource),
            (None, Scope::Cluster) => format!("{} {} at cluster scope", p.verb, p.resource),
            (None, Scope::Namespace) => {
                format!(
                    "{} {} in all namespaces (cluster scope)",
                    p.verb, p.resource
                )
            }
        }
    }
}

/// The permissions a run over `namespaces` needs (empty = all namespaces),
/// each where it must hold.
pub fn needed(namespaces: &[String]) -> Vec<Check> {
    if namespaces.is_empty() {
        return PERMISSIONS
            .iter()
            .map(|p| Check {
                permission: *p,
                namespace: None,
            })
            .collect();
    }
    let mut checks = Vec::new();
    for ns in unique(namespaces) {
        checks.extend(
            PERMISSIONS
                .iter()
                .filter(|p| p.scope == Scope::Namespace)
                .map(|p| Check {
                    permission: *p,
                    namespace: Some(ns.clone()),
                }),
        );
    }
    checks
}

/// RBAC rules granting `permissions`: one rule per (group, resource), verbs
/// merged and sorted, in the order the resources first appear.
pub fn rules<'a>(permissions: impl IntoIterator<Item = &'a Permission>) -> Vec<RbacRule> {
    let mut rules: Vec<RbacRule> = Vec::new();
    for p in permissions {
        match rules
            .iter_mut()
            .find(|r| r.group == p.group && r.resource == p.resource)
        {
            Some(rule) => {
                if !rule.verbs.contains(&p.verb) {
                    rule.verbs.push(p.verb);
                    rule.verbs.sort_unstable();
                }
            }
            None => rules.push(RbacRule {
                group: p.group,
                resource: p.resource,
                verbs: vec![p.verb],
            }),
        }
    }
    rules
}

/// What a ClusterRole must grant: every permission.
pub fn cluster_role_rules() -> Vec<RbacRule> {
    rules(PERMISSIONS)
}

/// What a Role in one exported namespace must grant: the namespace-scoped
/// permissions (listing all namespaces cannot be granted by a Role).
pub fn role_rules() -> Vec<RbacRule> {
    rules(PERMISSIONS.iter().filter(|p| p.scope == Scope::Namespace))
}

/// One RBAC rule with a single group and resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacRule {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: Vec<&'static str>,
}

fn unique(namespaces: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    for ns in namespaces {
        if !seen.contains(ns) {
            seen.push(ns.clone());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_namespaces_needs_everything_at_cluster_scope() {
        let checks = needed(&[]);
        assert_eq!(checks.len(), PERMISSIONS.len());
        assert!(checks.iter().all(|c| c.namespace.is_none()));
        assert_eq!(checks[0].describe(), "list namespaces at cluster scope");
    }

    #[test]
    fn some_namespaces_need_no_cluster_permission() {
        let checks = needed(&["a".into(), "b".into(), "a".into()]);
        assert_eq!(checks.len(), 2 * 4);
        assert!(
            checks
                .iter()
                .all(|c| c.permission.scope == Scope::Namespace)
        );
        assert_eq!(checks[4].describe(), "get namespaces in namespace b");
    }

    #[test]
    fn rules_merge_verbs_per_resource() {
        let rules = cluster_role_rules();
        let flat: Vec<(&str, Vec<&str>)> = rules
            .iter()
            .map(|r| (r.resource, r.verbs.clone()))
            .collect();
        assert_eq!(
            flat,
            [
                ("namespaces", vec!["get", "list"]),
                ("pods", vec!["get", "list"]),
                ("pods/log", vec!["get"]),
            ]
        );
        let role: Vec<(&str, Vec<&str>)> = role_rules()
            .iter()
            .map(|r| (r.resource, r.verbs.clone()))
            .collect();
        assert_eq!(
            role,
            [
                ("namespaces", vec!["get"]),
                ("pods", vec!["get", "list"]),
                ("pods/log", vec!["get"]),
            ]
        );
    }

    #[test]
    fn subresources_split() {
        let log = PERMISSIONS
            .iter()
            .find(|p| p.resource == "pods/log")
            .unwrap();
        assert_eq!(log.base_resource(), "pods");
        assert_eq!(log.subresource(), Some("log"));
    }
}
