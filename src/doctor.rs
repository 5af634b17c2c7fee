//! `kube-log-exporter doctor`: connect exactly as an export would, ask the
//! server who we are (SelfSubjectReview) and whether each permission of
//! `permissions::needed` holds (SelfSubjectAccessReview), and print the RBAC
//! that grants what is missing.
//!
//! Stdout is a YAML stream: the report as `#` comments, then the RBAC to
//! apply, so `kube-log-exporter doctor > rbac.yaml` (read it, then
//! `kubectl apply -f rbac.yaml`) needs no editing.

use std::fmt::Write as _;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::Request;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ApiClient, ApiError, Failure, RetryPolicy};
use crate::cli::DoctorArgs;
use crate::connect;
use crate::error::{Error, Result};
use crate::permissions::{self, Check, RbacRule};

const SELF_SUBJECT_REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
const SELF_SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// Name of the (Cluster)Role doctor suggests: the manifests' name, with the
/// same rules, so applying it over an existing install changes nothing.
const ROLE_NAME: &str = "log-exporter";
/// Access reviews in flight at once (a run over many namespaces asks 4 per namespace).
const CONCURRENT_REVIEWS: usize = 8;

pub async fn run(args: DoctorArgs) -> Result<u8> {
    let namespaces = args.namespaces.names();
    // The idle timeout matters only to log streams; doctor opens none.
    let connect_config = args.connect.into_config("60s")?;
    let conn = connect::connect(&connect_config).await?;
    let api = ApiClient::new(conn, RetryPolicy::new(3));

    let identity = who_am_i(&api).await?;
    let checks = permissions::needed(&namespaces);
    let verdicts: Vec<Verdict> = futures::stream::iter(checks)
        .map(|check| review(&api, check))
        .buffered(CONCURRENT_REVIEWS)
        .try_collect()
        .await?;

    let report = Report {
        source: &api.conn.source,
        server: &api.conn.server,
        identity: &identity,
        namespaces: &namespaces,
        verdicts: &verdicts,
    };
    print!("{}", report.render());
    Ok(if report.all_hold() { 0 } else { 1 })
}

/// Who the API server says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Known {
        username: String,
        groups: Vec<String>,
    },
    /// The server could not tell (no SelfSubjectReview API); why, in words.
    Unknown(String),
}

/// The RBAC subject for an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    ServiceAccount { namespace: String, name: String },
    User(String),
}

impl Subject {
    pub fn of(username: &str) -> Subject {
        match username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                Subject::ServiceAccount {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                }
            }
            _ => Subject::User(username.to_string()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Subject::ServiceAccount { namespace, name } => {
                format!("ServiceAccount {name} in namespace {namespace}")
            }
            Subject::User(name) => format!("User {}", quote(name)),
        }
    }

    /// A binding name per subject, so that a suggested binding never
    /// replaces another identity's binding of the same role.
    fn binding_name(&self) -> String {
        let raw = match self {
            Subject::ServiceAccount { namespace, name } => {
                format!("{ROLE_NAME}:serviceaccount:{namespace}:{name}")
            }
            Subject::User(name) => format!("{ROLE_NAME}:user:{name}"),
        };
        // RBAC names are path segments: no '/' or '%'. Keep them printable and short.
        raw.chars()
            .map(|c| match c {
                '/' | '%' => '-',
                c if c.is_ascii_graphic() => c,
                _ => '-',
            })
            .take(253)
            .collect()
    }

    fn yaml(&self) -> String {
        match self {
            Subject::ServiceAccount { namespace, name } => format!(
                "  - kind: ServiceAccount\n    name: {}\n    namespace: {}\n",
                quote(name),
                quote(namespace)
            ),
            Subject::User(name) => format!(
                "  - kind: User\n    apiGroup: rbac.authorization.k8s.io\n    name: {}\n",
                quote(name)
            ),
        }
    }
}

/// One permission, checked.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub check: Check,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// Not allowed; the server's reason, in words.
    Denied(String),
    /// The server would not answer the question; why.
    Unchecked(String),
}

async fn who_am_i(api: &ApiClient) -> Result<Identity> {
    let body = SelfSubjectReview::default();
    match post::<SelfSubjectReview>(api, SELF_SUBJECT_REVIEWS, &body).await {
        Ok(review) => {
            let info = review.status.and_then(|s| s.user_info);
            match info.and_then(|i| i.username.map(|u| (u, i.groups.unwrap_or_default()))) {
                Some((username, groups)) if !username.is_empty() => {
                    Ok(Identity::Known { username, groups })
                }
                _ => Ok(Identity::Unknown(
                    "the server's SelfSubjectReview named no user".into(),
                )),
            }
        }
        Err(ApiError::Status(f)) if f.code == 401 => Err(unauthorized(api)),
        Err(ApiError::Status(f)) if f.code == 404 => Ok(Identity::Unknown(
            "the server has no SelfSubjectReview API (it came with Kubernetes 1.28)".into(),
        )),
        Err(ApiError::Status(f)) => Ok(Identity::Unknown(format!(
            "the server would not say ({}: {})",
            f.code, f.message
        ))),
        Err(ApiError::Transport(e)) => Err(e),
    }
}

async fn review(api: &ApiClient, check: Check) -> Result<Verdict> {
    let p = &check.permission;
    let body = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.to_string()),
                group: Some(p.group.to_string()),
                resource: Some(p.base_resource().to_string()),
                subresource: p.subresource().map(str::to_string),
                namespace: check.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let outcome =
        match post::<SelfSubjectAccessReview>(api, SELF_SUBJECT_ACCESS_REVIEWS, &body).await {
            Ok(answer) => match answer.status {
                Some(status) if status.allowed => Outcome::Allowed,
                Some(status) => Outcome::Denied(denial_reason(
                    status.reason.as_deref(),
                    status.evaluation_error.as_deref(),
                )),
                None => Outcome::Unchecked("the server's answer had no status".into()),
            },
            Err(ApiError::Status(f)) if f.code == 401 => return Err(unauthorized(api)),
            Err(ApiError::Status(Failure { code, message, .. })) => {
                Outcome::Unchecked(format!("the access review was refused ({code}: {message})"))
            }
            Err(ApiError::Transport(e)) => return Err(e),
        };
    Ok(Verdict { check, outcome })
}

fn denial_reason(reason: Option<&str>, evaluation_error: Option<&str>) -> String {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let error = evaluation_error.map(str::trim).filter(|e| !e.is_empty());
    match (reason, error) {
        (Some(r), Some(e)) => format!("{r} ({e})"),
        (Some(r), None) => r.to_string(),
        (None, Some(e)) => format!("denied ({e})"),
        // RBAC gives no reason for a denial: it only knows no rule matched.
        (None, None) => "no Role or ClusterRole bound to this identity grants it".into(),
    }
}

fn unauthorized(api: &ApiClient) -> Error {
    Error::Unauthorized {
        server: api.conn.server.clone(),
    }
}

async fn post<T: Serialize + DeserializeOwned>(
    api: &ApiClient,
    path: &str,
    body: &T,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| {
        ApiError::Transport(Error::Api {
            what: format!("POST {path}"),
            code: 0,
            message: format!("cannot encode the request ({e})"),
        })
    })?;
    let request = Request::new(path);
    // Building a POST fails only on an invalid dry-run setting, which we never set.
    api.get_json::<T>(|| {
        request
            .create(&PostParams::default(), bytes.clone())
            .unwrap_or_default()
    })
    .await
}

/// What doctor prints.
pub struct Report<'a> {
    pub source: &'a str,
    pub server: &'a str,
    pub identity: &'a Identity,
    /// Empty = all namespaces.
    pub namespaces: &'a [String],
    pub verdicts: &'a [Verdict],
}

impl Report<'_> {
    pub fn all_hold(&self) -> bool {
        self.verdicts.iter().all(|v| v.outcome == Outcome::Allowed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            if s.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {s}");
            }
        };
        line("kube-log-exporter doctor");
        line(&format!("connection: {}", self.source));
        line(&format!("server:     {}", self.server));
        let subject = match self.identity {
            Identity::Known { username, groups } => {
                let groups = if groups.is_empty() {
                    String::new()
                } else {
                    format!(" (groups: {})", groups.join(", "))
                };
                line(&format!("identity:   {}{groups}", quote(username)));
                Some(Subject::of(username))
            }
            Identity::Unknown(why) => {
                line(&format!("identity:   unknown: {why}"));
                None
            }
        };
        let scope = if self.namespaces.is_empty() {
            "all namespaces".to_string()
        } else {
            format!("namespace {}", self.namespaces.join(", "))
        };
        line(&format!("export of:  {scope}"));
        line("");
        line("permissions the export needs:");
        for v in self.verdicts {
            let what = v.check.describe();
            match &v.outcome {
                Outcome::Allowed => line(&format!("  ok       {what}")),
                Outcome::Denied(reason) => line(&format!("  MISSING  {what}: {reason}")),
                Outcome::Unchecked(why) => line(&format!("  UNKNOWN  {what}: {why}")),
            }
        }
        line("");
        let missing = self
            .verdicts
            .iter()
            .filter(|v| v.outcome != Outcome::Allowed)
            .count();
        if missing == 0 {
            line(&format!(
                "OK: all {} permissions hold; an export of {scope} can run.",
                self.verdicts.len()
            ));
            return out;
        }
        let of_total = format!("{missing} of {} permissions", self.verdicts.len());
        match &subject {
            Some(Subject::User(name)) if name == "system:anonymous" => {
                line(&format!(
                    "FAIL: {of_total} are missing, and the server sees no credentials (system:anonymous)."
                ));
                line(
                    "Do not grant rights to system:anonymous: fix the credentials of the kubeconfig or ServiceAccount, then run `kube-log-exporter doctor` again.",
                );
                out
            }
            Some(subject) => {
                line(&format!(
                    "FAIL: {of_total} are missing for {}.",
                    subject.describe()
                ));
                line("The RBAC below grants them. Apply it as an administrator (save this output,");
                line(
                    "read it, `kubectl apply -f FILE`), then run `kube-log-exporter doctor` again.",
                );
                if self.namespaces.is_empty() {
                    line("To export only some namespaces instead, run doctor with --namespace NS.");
                }
                out.push_str(&self.rbac(subject));
                out
            }
            None => {
                line(&format!(
                    "FAIL: {of_total} are missing; the server does not say who you are, so no RBAC can be written for you."
                ));
                line(
                    "Bind the rules of manifests/base/clusterrole.yaml (or manifests/overlays/namespaced/role.yaml) to your user or ServiceAccount, then run `kube-log-exporter doctor` again.",
                );
                out
            }
        }
    }

    /// ClusterRole + ClusterRoleBinding for all namespaces; a Role +
    /// RoleBinding in each namespace where something is missing otherwise.
    fn rbac(&self, subject: &Subject) -> String {
        let mut yaml = String::new();
        if self.namespaces.is_empty() {
            yaml.push_str(&role_yaml(
                "ClusterRole",
                None,
                &permissions::cluster_role_rules(),
            ));
            yaml.push_str(&binding_yaml("ClusterRole", None, subject));
            return yaml;
        }
        let mut wanting: Vec<&str> = Vec::new();
        for v in self.verdicts {
            if v.outcome != Outcome::Allowed
                && let Some(ns) = v.check.namespace.as_deref()
                && !wanting.contains(&ns)
            {
                wanting.push(ns);
            }
        }
        for ns in wanting {
            yaml.push_str(&role_yaml("Role", Some(ns), &permissions::role_rules()));
            yaml.push_str(&binding_yaml("Role", Some(ns), subject));
        }
        yaml
    }
}

fn role_yaml(kind: &str, namespace: Option<&str>, rules: &[RbacRule]) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "---");
    let _ = writeln!(y, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(y, "kind: {kind}");
    let _ = writeln!(y, "metadata:");
    let _ = writeln!(y, "  name: {ROLE_NAME}");
    if let Some(ns) = namespace {
        let _ = writeln!(y, "  namespace: {}", quote(ns));
    }
    let _ = writeln!(y, "  labels:");
    let _ = writeln!(y, "    app.kubernetes.io/name: kube-log-exporter");
    let _ = writeln!(y, "rules:");
    for rule in rules {
        let verbs: Vec<String> = rule.verbs.iter().map(|v| quote(v)).collect();
        let _ = writeln!(y, "  - apiGroups: [{}]", quote(rule.group));
        let _ = writeln!(y, "    resources: [{}]", quote(rule.resource));
        let _ = writeln!(y, "    verbs: [{}]", verbs.join(", "));
    }
    y
}

fn binding_yaml(role_kind: &str, namespace: Option<&str>, subject: &Subject) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "---");
    let _ = writeln!(y, "apiVersion: rbac.authorization.k8s.io/v1");
    let _ = writeln!(y, "kind: {role_kind}Binding");
    let _ = writeln!(y, "metadata:");
    let _ = writeln!(y, "  name: {}", quote(&subject.binding_name()));
    if let Some(ns) = namespace {
        let _ = writeln!(y, "  namespace: {}", quote(ns));
    }
    let _ = writeln!(y, "  labels:");
    let _ = writeln!(y, "    app.kubernetes.io/name: kube-log-exporter");
    let _ = writeln!(y, "roleRef:");
    let _ = writeln!(y, "  apiGroup: rbac.authorization.k8s.io");
    let _ = writeln!(y, "  kind: {role_kind}");
    let _ = writeln!(y, "  name: {ROLE_NAME}");
    let _ = writeln!(y, "subjects:");
    y.push_str(&subject.yaml());
    y
}

/// A YAML double-quoted scalar: JSON string syntax is valid YAML, and names
/// from the server may hold any character.
fn quote(s: &str) -> String {
    // Serializing a &str to JSON cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(namespaces: &[String], denied: bool) -> Vec<Verdict> {
        permissions::needed(namespaces)
            .into_iter()
            .map(|check| Verdict {
                check,
                outcome: if denied {
                    Outcome::Denied(denial_reason(None, None))
                } else {
                    Outcome::Allowed
                },
            })
            .collect()
    }

    fn report<'a>(identity: &'a Identity, ns: &'a [String], v: &'a [Verdict]) -> String {
        Report {
            source: "kubeconfig /k, context c",
            server: "https://h:6443",
            identity,
            namespaces: ns,
            verdicts: v,
        }
        .render()
    }

    #[test]
    fn subjects_from_user_names() {
        assert_eq!(
            Subject::of("system:serviceaccount:log-exporter:exporter"),
            Subject::ServiceAccount {
                namespace: "log-exporter".into(),
                name: "exporter".into()
            }
        );
        assert_eq!(Subject::of("alice"), Subject::User("alice".into()));
        assert_eq!(
            Subject::of("system:serviceaccount:broken"),
            Subject::User("system:serviceaccount:broken".into())
        );
        assert_eq!(
            Subject::User("a/b%c".into()).binding_name(),
            "log-exporter:user:a-b-c"
        );
    }

    #[test]
    fn all_rights_print_no_rbac() {
        let id = Identity::Known {
            username: "alice".into(),
            groups: vec![],
        };
        let v = verdicts(&[], false);
        let out = report(&id, &[], &v);
        assert!(out.lines().all(|l| l.starts_with('#')), "{out}");
        assert!(out.contains("OK: all 5 permissions hold"), "{out}");
    }

    #[test]
    fn no_rights_print_a_cluster_role_for_the_service_account() {
        let id = Identity::Known {
            username: "system:serviceaccount:ns1:exp".into(),
            groups: vec!["system:authenticated".into()],
        };
        let v = verdicts(&[], true);
        let out = report(&id, &[], &v);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"], "{out}");
        assert_eq!(docs[1]["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(docs[1]["subjects"][0]["namespace"], "ns1");
        assert_eq!(docs[1]["subjects"][0]["name"], "exp");
        assert_eq!(docs[0]["rules"][2]["resources"][0], "pods/log");
    }

    #[test]
    fn namespace_rights_print_a_role_per_namespace() {
        let id = Identity::Known {
            username: "bob@example.com".into(),
            groups: vec![],
        };
        let ns = vec!["a".to_string(), "b".to_string()];
        let mut v = verdicts(&ns, true);
        for verdict in v
            .iter_mut()
            .filter(|v| v.check.namespace.as_deref() == Some("a"))
        {
            verdict.outcome = Outcome::Allowed;
        }
        let out = report(&id, &ns, &v);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["Role", "RoleBinding"], "{out}");
        assert_eq!(docs[0]["metadata"]["namespace"], "b");
        assert_eq!(docs[1]["subjects"][0]["kind"], "User");
        assert_eq!(docs[1]["subjects"][0]["name"], "bob@example.com");
    }

    #[test]
    fn anonymous_gets_no_rbac() {
        let id = Identity::Known {
            username: "system:anonymous".into(),
            groups: vec![],
        };
        let v = verdicts(&[], true);
        let out = report(&id, &[], &v);
        assert!(!out.contains("kind:"), "{out}");
        assert!(out.contains("Do not grant rights to system:anonymous"));
    }
}
