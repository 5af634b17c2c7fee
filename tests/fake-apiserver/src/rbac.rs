//! A tiny RBAC table: per user, the rules it was granted, and the real
//! apiserver's wording for a denial.

/// One grant. `resource` is "namespaces", "pods" or "pods/log" ("*" matches
/// any); `namespace: None` is cluster-wide (like a ClusterRoleBinding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub resource: String,
    pub namespace: Option<String>,
}

impl Rule {
    pub fn new(verbs: &[&str], resource: &str, namespace: Option<&str>) -> Rule {
        Rule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
        }
    }
}

/// What the exporter's ClusterRole grants: get,list namespaces; get,list pods;
/// get pods/log — cluster-wide.
pub fn full_access_rules() -> Vec<Rule> {
    vec![
        Rule::new(&["get", "list"], "namespaces", None),
        Rule::new(&["get", "list"], "pods", None),
        Rule::new(&["get"], "pods/log", None),
    ]
}

/// The same three rules limited to one namespace (a Role + RoleBinding).
pub fn namespace_rules(namespace: &str) -> Vec<Rule> {
    vec![
        Rule::new(&["get", "list"], "pods", Some(namespace)),
        Rule::new(&["get"], "pods/log", Some(namespace)),
        Rule::new(&["get"], "namespaces", Some(namespace)),
    ]
}

/// The attributes of a resource request, as the authorizer sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// Resource with subresource, e.g. "pods/log".
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

pub fn allows(rules: &[Rule], a: &Attributes) -> bool {
    rules.iter().any(|r| {
        let verb = r.verbs.iter().any(|v| v == "*" || *v == a.verb);
        let resource = r.resource == "*" || r.resource == a.resource;
        // A namespaced grant never covers a cluster-scoped request.
        let scope = match (&r.namespace, &a.namespace) {
            (None, _) => true,
            (Some(rn), Some(an)) => rn == an,
            (Some(_), None) => false,
        };
        verb && resource && scope
    })
}

/// `forbiddenMessage` (apiserver responsewriters/errors.go) wrapped by
/// `NewForbidden`: `pods "p" is forbidden: User "u" cannot get resource
/// "pods/log" in API group "" in the namespace "ns"`.
pub fn forbidden_message(user: &str, a: &Attributes) -> String {
    let base = a.resource.split('/').next().unwrap_or_default();
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace {}", go_quote(ns)),
        None => "at the cluster scope".to_string(),
    };
    let detail = format!(
        "User {} cannot {} resource {} in API group \"\" {}",
        go_quote(user),
        a.verb,
        go_quote(&a.resource),
        scope
    );
    match &a.name {
        Some(n) => format!("{base} {} is forbidden: {detail}", go_quote(n)),
        None => format!("{base} is forbidden: {detail}"),
    }
}

/// Go's `%q` for the plain names used here.
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn rules_and_scopes() {
        let full = full_access_rules();
        assert!(allows(&full, &attrs("list", "pods", None, None)));
        assert!(allows(
            &full,
            &attrs("get", "pods/log", Some("a"), Some("p"))
        ));
        assert!(!allows(&full, &attrs("list", "pods/log", Some("a"), None)));
        assert!(!allows(
            &full,
            &attrs("delete", "pods", Some("a"), Some("p"))
        ));
        let ns = namespace_rules("a");
        assert!(allows(&ns, &attrs("list", "pods", Some("a"), None)));
        assert!(!allows(&ns, &attrs("list", "pods", Some("b"), None)));
        assert!(!allows(&ns, &attrs("list", "pods", None, None)));
    }

    #[test]
    fn denial_wording() {
        let u = "system:serviceaccount:log-exporter:log-exporter";
        assert_eq!(
            forbidden_message(u, &attrs("list", "pods", Some("kube-system"), None)),
            "pods is forbidden: User \"system:serviceaccount:log-exporter:log-exporter\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
        );
        assert_eq!(
            forbidden_message("u", &attrs("get", "pods/log", Some("ns"), Some("p"))),
            "pods \"p\" is forbidden: User \"u\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(
            forbidden_message("u", &attrs("list", "namespaces", None, None)),
            "namespaces is forbidden: User \"u\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
    }
}
