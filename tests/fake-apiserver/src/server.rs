//! HTTP(S) serving and routing: authentication, authorization, lists, gets,
//! the log subresource and the two self-reviews.

// Handlers return early with ready-made error responses; boxing them would
// only add noise.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{Identity, UserInfo, Users, bearer};
use crate::cluster::{Cluster, ContainerKind, ContainerState, Pod};
use crate::faults::{Faults, LogFault};
use crate::list::{INCONSISTENT_CONTINUE, PageError, paginate};
use crate::logs::{CHUNK, LogCursor, LogQuery};
use crate::objects::{list_json, namespace_json, pod_json, status_json};
use crate::rbac::{Attributes, allows, forbidden_message};
use crate::selectors::{fields_match, labels_match, parse_field_selector, parse_label_selector};
use crate::tls::{Pki, cert_identity};
use crate::{Options, RequestRecord, Stats};

pub(crate) type Body = BoxBody<Bytes, io::Error>;

pub(crate) struct State {
    pub cluster: Mutex<Cluster>,
    pub rv: AtomicU64,
    pub users: Mutex<Users>,
    pub faults: Faults,
    pub stats: Mutex<Stats>,
    pub options: Options,
    pub pki: Option<Pki>,
    pub addr: SocketAddr,
}

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];

/// Accepts connections until `shutdown` flips to true.
pub(crate) async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = state
        .pki
        .as_ref()
        .map(|p| tokio_rustls::TlsAcceptor::from(p.server_config.clone()));
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| cert_identity(c));
                    serve_conn(state, TokioIo::new(tls), cert).await;
                }
                None => serve_conn(state, TokioIo::new(tcp), None).await,
            }
        });
    }
}

async fn serve_conn<I>(state: Arc<State>, io: I, cert: Option<(String, Vec<String>)>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let state = state.clone();
        let cert = cert.clone();
        async move { Ok::<_, Infallible>(handle(state, cert, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap(),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status_json(code, reason, message, details),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

fn not_found(resource: &str, name: &str) -> Response<Body> {
    status_response(
        404,
        "NotFound",
        &format!("{resource} {} not found", crate::rbac::go_quote(name)),
        Some(json!({"name": name, "kind": resource})),
    )
}

/// A 5xx / 429 as the real server sends it: 429 is the plain-text body of the
/// max-in-flight / priority-and-fairness filters, the others a `Status`.
fn fault_response(code: u16, retry_after: Option<u64>) -> Response<Body> {
    let mut r = match code {
        429 => full(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain; charset=utf-8",
            "Too many requests, please try again later.\n",
        ),
        503 => status_response(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            None,
        ),
        500 => status_response(
            500,
            "InternalError",
            "Internal error occurred: injected fault",
            Some(json!({"causes": [{"message": "injected fault"}]})),
        ),
        c => status_response(c, "InternalError", &format!("injected fault ({c})"), None),
    };
    if let (Some(s), 429 | 503) = (retry_after, code) {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&s.to_string()).unwrap(),
        );
    }
    r
}

fn query_map(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn handle(
    state: Arc<State>,
    cert: Option<(String, Vec<String>)>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    state.stats.lock().unwrap().requests.push(RequestRecord {
        method: req.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        at: std::time::Instant::now(),
    });

    // Authentication.
    let user = if state.options.tls {
        let id = match (&cert, req.headers().get(header::AUTHORIZATION)) {
            (Some((user, groups)), _) => Identity::ClientCert {
                user: user.clone(),
                groups: groups.clone(),
            },
            (None, Some(h)) => match h.to_str().ok().and_then(bearer) {
                Some(t) => Identity::Token(t.to_string()),
                None => Identity::Token(String::new()),
            },
            (None, None) => Identity::Anonymous,
        };
        let found = state
            .users
            .lock()
            .unwrap()
            .authenticate(&id, state.options.anonymous_auth);
        match found {
            Some(u) => Some(u),
            None => return status_response(401, "Unauthorized", "Unauthorized", None),
        }
    } else {
        None // kubectl proxy: the proxy authenticates; everything is allowed.
    };

    let q = query_map(&query);
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();

    if method == Method::POST {
        return match segs[..] {
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ] => {
                let body = read_json(req).await;
                self_subject_access_review(&state, user.as_ref(), body)
            }
            ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] => {
                self_subject_review(user.as_ref())
            }
            _ => status_response(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                None,
            ),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        );
    }

    // Resource requests and their RBAC attributes.
    let (attrs, route) = match segs[..] {
        []
        | ["version"]
        | ["api"]
        | ["api", "v1"]
        | ["apis"]
        | ["healthz"]
        | ["livez"]
        | ["readyz"] => {
            return discovery(&state, &segs);
        }
        ["api", "v1", "namespaces"] => (
            attrs("list", "namespaces", None, None),
            Route::ListNamespaces,
        ),
        ["api", "v1", "namespaces", ns] => (
            attrs("get", "namespaces", Some(ns), Some(ns)),
            Route::GetNamespace(ns.to_string()),
        ),
        ["api", "v1", "pods"] => (attrs("list", "pods", None, None), Route::ListPods(None)),
        ["api", "v1", "namespaces", ns, "pods"] => (
            attrs("list", "pods", Some(ns), None),
            Route::ListPods(Some(ns.to_string())),
        ),
        ["api", "v1", "namespaces", ns, "pods", pod] => (
            attrs("get", "pods", Some(ns), Some(pod)),
            Route::GetPod(ns.to_string(), pod.to_string()),
        ),
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => (
            attrs("get", "pods/log", Some(ns), Some(pod)),
            Route::Log(ns.to_string(), pod.to_string()),
        ),
        _ => {
            return status_response(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            );
        }
    };

    if let Some(u) = &user {
        let users = state.users.lock().unwrap();
        if !allows(users.rules(&u.username), &attrs) {
            let resource = attrs
                .resource
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let mut details = json!({"kind": resource});
            if let Some(n) = &attrs.name {
                details = json!({"name": n, "kind": resource});
            }
            return status_response(
                403,
                "Forbidden",
                &forbidden_message(&u.username, &attrs),
                Some(details),
            );
        }
    }

    match route {
        Route::ListNamespaces => {
            state.stats.lock().unwrap().list_requests += 1;
            list_namespaces(&state, &q)
        }
        Route::ListPods(ns) => {
            state.stats.lock().unwrap().list_requests += 1;
            list_pods(&state, ns.as_deref(), &q)
        }
        Route::GetNamespace(ns) => {
            let c = state.cluster.lock().unwrap();
            if c.namespaces.contains(&ns) {
                json_response(
                    StatusCode::OK,
                    &namespace_json(&ns, state.rv.load(Ordering::SeqCst), true),
                )
            } else {
                not_found("namespaces", &ns)
            }
        }
        Route::GetPod(ns, name) => {
            let c = state.cluster.lock().unwrap();
            match c.pod(&ns, &name) {
                Some(p) => json_response(
                    StatusCode::OK,
                    &pod_json(p, state.rv.load(Ordering::SeqCst), true),
                ),
                None => not_found("pods", &name),
            }
        }
        Route::Log(ns, pod) => {
            state.stats.lock().unwrap().log_requests += 1;
            pod_log(&state, &ns, &pod, &q)
        }
    }
}

enum Route {
    ListNamespaces,
    GetNamespace(String),
    ListPods(Option<String>),
    GetPod(String, String),
    Log(String, String),
}

fn attrs(verb: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> Attributes {
    Attributes {
        verb: verb.to_string(),
        resource: resource.to_string(),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
    }
}

async fn read_json(req: Request<Incoming>) -> Value {
    match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn discovery(state: &State, segs: &[&str]) -> Response<Body> {
    let v = match segs {
        ["version"] => json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64"
        }),
        ["api"] => json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.addr.to_string()}]
        }),
        ["api", "v1"] => json!({
            "kind": "APIResourceList", "groupVersion": "v1",
            "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["ns"]},
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}
            ]
        }),
        ["apis"] => json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [
                {"name": "authentication.k8s.io", "versions": [{"groupVersion": "authentication.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "authentication.k8s.io/v1", "version": "v1"}},
                {"name": "authorization.k8s.io", "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"}}
            ]
        }),
        [] => {
            json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]})
        }
        _ => return full(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
    };
    json_response(StatusCode::OK, &v)
}

fn self_subject_review(user: Option<&UserInfo>) -> Response<Body> {
    let (username, groups) = match user {
        Some(u) => (u.username.clone(), u.groups.clone()),
        None => (
            "system:admin".to_string(),
            vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
        ),
    };
    json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": username, "groups": groups}}
        }),
    )
}

fn self_subject_access_review(
    state: &State,
    user: Option<&UserInfo>,
    body: Value,
) -> Response<Body> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let (allowed, reason) = if let Some(ra) = spec.get("resourceAttributes") {
        let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut resource = s("resource");
        if !s("subresource").is_empty() {
            resource = format!("{resource}/{}", s("subresource"));
        }
        let a = Attributes {
            verb: s("verb"),
            resource,
            namespace: Some(s("namespace")).filter(|n| !n.is_empty()),
            name: Some(s("name")).filter(|n| !n.is_empty()),
        };
        match user {
            None => (true, "kubectl proxy: no authorization".to_string()),
            Some(u) => {
                let ok = s("group").is_empty()
                    && allows(state.users.lock().unwrap().rules(&u.username), &a);
                let reason = if ok {
                    format!(
                        "RBAC: allowed by fake-apiserver rules of User {}",
                        crate::rbac::go_quote(&u.username)
                    )
                } else {
                    String::new()
                };
                (ok, reason)
            }
        }
    } else {
        // nonResourceAttributes: discovery paths are readable by everyone.
        (true, String::new())
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status
        }),
    )
}

struct ListParams {
    limit: Option<usize>,
    cont: Option<String>,
    labels: Vec<crate::selectors::LabelReq>,
    fields: Vec<crate::selectors::FieldReq>,
}

fn list_params(
    state: &State,
    q: &[(String, String)],
    known: &[&str],
) -> Result<ListParams, Response<Body>> {
    let limit = match param(q, "limit") {
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| {
                    bad_request(&format!(
                        "strconv.ParseInt: parsing {}: invalid syntax",
                        crate::rbac::go_quote(l)
                    ))
                })?
                .max(0) as usize,
        ),
        None => None,
    };
    let limit = match (limit.filter(|l| *l > 0), state.options.page_size_cap) {
        (Some(l), Some(cap)) => Some(l.min(cap.max(1))),
        (l, _) => l,
    };
    let labels = parse_label_selector(param(q, "labelSelector").unwrap_or(""))
        .map_err(|e| bad_request(&e))?;
    let fields = parse_field_selector(param(q, "fieldSelector").unwrap_or(""), known)
        .map_err(|e| bad_request(&e))?;
    Ok(ListParams {
        limit,
        cont: param(q, "continue").map(str::to_string),
        labels,
        fields,
    })
}

fn page_response(
    state: &State,
    kind: &str,
    rv: u64,
    p: &ListParams,
    items: Vec<(String, Value)>,
    unfiltered: bool,
) -> Response<Body> {
    if p.cont.as_deref().is_some_and(|c| !c.is_empty()) {
        state.faults.continue_token_used();
    }
    match paginate(
        items,
        p.limit,
        p.cont.as_deref(),
        rv,
        state.faults.token_epoch(),
        unfiltered,
    ) {
        Ok(page) => json_response(
            StatusCode::OK,
            &list_json(
                kind,
                rv,
                page.continue_token.as_deref(),
                page.remaining,
                page.items,
            ),
        ),
        Err(PageError::BadToken(m)) => bad_request(&m),
        Err(PageError::Expired {
            inconsistent_continue,
        }) => {
            let mut v = status_json(410, "Expired", INCONSISTENT_CONTINUE, None);
            v["metadata"] = json!({"continue": inconsistent_continue});
            json_response(StatusCode::GONE, &v)
        }
    }
}

fn list_namespaces(state: &State, q: &[(String, String)]) -> Response<Body> {
    if let Some((code, retry)) = state.faults.next_list_status() {
        return fault_response(code, Some(retry));
    }
    let p = match list_params(state, q, NAMESPACE_FIELDS) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let rv = state.rv.load(Ordering::SeqCst);
    let c = state.cluster.lock().unwrap();
    let mut names: Vec<&String> = c.namespaces.iter().collect();
    names.sort();
    names.dedup();
    let items = names
        .into_iter()
        .filter(|n| {
            let labels = [("kubernetes.io/metadata.name".to_string(), n.to_string())].into();
            labels_match(&p.labels, &labels)
                && fields_match(&p.fields, |f| match f {
                    "metadata.name" => n.to_string(),
                    _ => "Active".to_string(),
                })
        })
        .map(|n| (n.clone(), namespace_json(n, rv, false)))
        .collect();
    let unfiltered = p.labels.is_empty() && p.fields.is_empty();
    page_response(state, "NamespaceList", rv, &p, items, unfiltered)
}

fn pod_field(p: &Pod, f: &str) -> String {
    match f {
        "metadata.name" => p.name.clone(),
        "metadata.namespace" => p.namespace.clone(),
        "spec.nodeName" => p.node_name.clone().unwrap_or_default(),
        "spec.restartPolicy" => "Always".into(),
        "spec.schedulerName" => "default-scheduler".into(),
        "spec.serviceAccountName" => "default".into(),
        "spec.hostNetwork" => "false".into(),
        "status.phase" => p.phase.clone(),
        _ => String::new(),
    }
}

fn list_pods(state: &State, ns: Option<&str>, q: &[(String, String)]) -> Response<Body> {
    if let Some((code, retry)) = state.faults.next_list_status() {
        return fault_response(code, Some(retry));
    }
    let p = match list_params(state, q, POD_FIELDS) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let rv = state.rv.load(Ordering::SeqCst);
    let c = state.cluster.lock().unwrap();
    let mut pods: Vec<&Pod> = c
        .pods
        .iter()
        .filter(|pod| ns.is_none_or(|n| pod.namespace == n))
        .filter(|pod| {
            labels_match(&p.labels, &pod.labels) && fields_match(&p.fields, |f| pod_field(pod, f))
        })
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let items = pods
        .into_iter()
        .map(|pod| {
            (
                format!("{}/{}", pod.namespace, pod.name),
                pod_json(pod, rv, false),
            )
        })
        .collect();
    let unfiltered = p.labels.is_empty() && p.fields.is_empty();
    page_response(state, "PodList", rv, &p, items, unfiltered)
}

fn parse_bool(v: Option<&str>) -> Result<bool, Response<Body>> {
    match v {
        None | Some("") => Ok(false),
        Some("true") | Some("1") | Some("True") | Some("TRUE") | Some("t") | Some("T") => Ok(true),
        Some("false") | Some("0") | Some("False") | Some("FALSE") | Some("f") | Some("F") => {
            Ok(false)
        }
        Some(o) => Err(bad_request(&format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            crate::rbac::go_quote(o)
        ))),
    }
}

fn parse_int(v: Option<&str>) -> Result<Option<i64>, Response<Body>> {
    match v {
        None => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            bad_request(&format!(
                "strconv.ParseInt: parsing {}: invalid syntax",
                crate::rbac::go_quote(s)
            ))
        }),
    }
}

fn invalid_log_options(pod: &str, detail: &str) -> Response<Body> {
    status_response(
        422,
        "Invalid",
        &format!(
            "PodLogOptions {} is invalid: {detail}",
            crate::rbac::go_quote(pod)
        ),
        Some(json!({"name": pod, "kind": "PodLogOptions"})),
    )
}

/// Parses and validates the log query (ValidatePodLogOptions).
fn log_query(
    pod: &str,
    q: &[(String, String)],
) -> Result<(LogQuery, bool, Option<String>), Response<Body>> {
    let previous = parse_bool(param(q, "previous"))?;
    let timestamps = parse_bool(param(q, "timestamps"))?;
    let _follow = parse_bool(param(q, "follow"))?;
    let since_seconds = parse_int(param(q, "sinceSeconds"))?;
    let tail = parse_int(param(q, "tailLines"))?;
    let limit = parse_int(param(q, "limitBytes"))?;
    let since_time = match param(q, "sinceTime") {
        None => None,
        Some(s) => Some(DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            bad_request(&format!(
                "parsing time {} as \"2006-01-02T15:04:05Z07:00\": cannot parse {} as \"2006\"",
                crate::rbac::go_quote(s),
                crate::rbac::go_quote(s)
            ))
        })?),
    };
    if let Some(t) = tail.filter(|t| *t < 0) {
        return Err(invalid_log_options(
            pod,
            &format!("tailLines: Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    if let Some(s) = since_seconds.filter(|s| *s < 1) {
        return Err(invalid_log_options(
            pod,
            &format!("sinceSeconds: Invalid value: {s}: must be greater than 0"),
        ));
    }
    if let Some(l) = limit.filter(|l| *l < 1) {
        return Err(invalid_log_options(
            pod,
            &format!("limitBytes: Invalid value: {l}: must be greater than 0"),
        ));
    }
    if since_seconds.is_some() && since_time.is_some() {
        return Err(invalid_log_options(
            pod,
            "[]: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    let container = param(q, "container")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok((
        LogQuery {
            timestamps,
            since_time,
            since_seconds,
            tail_lines: tail.map(|t| t as u64),
            limit_bytes: limit.map(|l| l as u64),
        },
        previous,
        container,
    ))
}

fn pod_log(state: &Arc<State>, ns: &str, pod_name: &str, q: &[(String, String)]) -> Response<Body> {
    if state.faults.take_delete_on_log(ns, pod_name) {
        state.cluster.lock().unwrap().delete_pod(ns, pod_name);
        state.rv.fetch_add(1, Ordering::SeqCst);
    }
    let (query, previous, container) = match log_query(pod_name, q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let spec = {
        let c = state.cluster.lock().unwrap();
        let Some(pod) = c.pod(ns, pod_name) else {
            return not_found("pods", pod_name);
        };
        // validateContainer (pkg/registry/core/pod/strategy.go).
        let regular: Vec<_> = pod
            .containers
            .iter()
            .filter(|c| c.kind == ContainerKind::Regular)
            .collect();
        let name = match container {
            Some(n) => {
                if !pod.containers.iter().any(|c| c.name == n) {
                    return bad_request(&format!("container {n} is not valid for pod {pod_name}"));
                }
                n
            }
            None if regular.len() == 1 => regular[0].name.clone(),
            None if regular.is_empty() => {
                return bad_request(&format!(
                    "a container name must be specified for pod {pod_name}"
                ));
            }
            None => {
                let order = [
                    ContainerKind::Init,
                    ContainerKind::Regular,
                    ContainerKind::Ephemeral,
                ];
                let names: Vec<&str> = order
                    .iter()
                    .flat_map(|k| pod.containers.iter().filter(move |c| c.kind == *k))
                    .map(|c| c.name.as_str())
                    .collect();
                return bad_request(&format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        };
        if pod.node_name.is_none() {
            let mut r = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
            *r.status_mut() = StatusCode::NO_CONTENT;
            return r;
        }
        let faults = state.faults.take_log_faults(ns, pod_name, &name);
        if let Some(code) = faults.iter().find_map(|f| match f {
            LogFault::Status { code } => Some(*code),
            _ => None,
        }) {
            return fault_response(code, Some(1));
        }
        let c = pod
            .containers
            .iter()
            .find(|c| c.name == name)
            .expect("validated");
        // validateContainerLogStatus (pkg/kubelet/kubelet_pods.go).
        let quoted = (
            crate::rbac::go_quote(&c.name),
            crate::rbac::go_quote(pod_name),
        );
        let spec = if previous {
            match &c.previous {
                Some(p) => p.clone(),
                None => {
                    return bad_request(&format!(
                        "previous terminated container {} in pod {} not found",
                        quoted.0, quoted.1
                    ));
                }
            }
        } else {
            match (&c.state, &c.previous) {
                (ContainerState::Running | ContainerState::Terminated { .. }, _) => c.log.clone(),
                (ContainerState::Waiting { .. }, Some(p)) => p.clone(),
                (ContainerState::Waiting { reason }, None) => {
                    let why = match reason.as_str() {
                        "ErrImagePull" => "image can't be pulled".to_string(),
                        "ImagePullBackOff" => "trying and failing to pull image".to_string(),
                        r => r.to_string(),
                    };
                    return bad_request(&format!(
                        "container {} in pod {} is waiting to start: {why}",
                        quoted.0, quoted.1
                    ));
                }
            }
        };
        (spec, faults)
    };
    log_response(state.clone(), spec.0, &query, spec.1)
}

/// Counts open log streams while alive.
struct StreamGuard(Arc<State>);

impl StreamGuard {
    fn new(state: Arc<State>) -> StreamGuard {
        {
            let mut s = state.stats.lock().unwrap();
            s.open_log_streams += 1;
            s.max_concurrent_log_streams = s.max_concurrent_log_streams.max(s.open_log_streams);
        }
        StreamGuard(state)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stats.lock().unwrap().open_log_streams -= 1;
    }
}

struct LogBody {
    cursor: LogCursor,
    done_generating: bool,
    carry: Vec<u8>,
    carry_pos: usize,
    sent: u64,
    drop_after: Option<u64>,
    stall_before: Option<Duration>,
    stall_after: Option<(u64, Duration)>,
    finished: bool,
    _guard: StreamGuard,
}

fn log_response(
    state: Arc<State>,
    spec: crate::cluster::LogSpec,
    query: &LogQuery,
    faults: Vec<LogFault>,
) -> Response<Body> {
    let mut body = LogBody {
        cursor: LogCursor::new(&spec, query, Utc::now()),
        done_generating: false,
        carry: Vec::with_capacity(CHUNK * 2),
        carry_pos: 0,
        sent: 0,
        drop_after: None,
        stall_before: None,
        stall_after: None,
        finished: false,
        _guard: StreamGuard::new(state),
    };
    for f in faults {
        match f {
            LogFault::DropAfter { bytes } => body.drop_after = Some(bytes),
            LogFault::StallBefore { duration } => body.stall_before = Some(duration),
            LogFault::StallAfter { bytes, duration } => body.stall_after = Some((bytes, duration)),
            LogFault::Status { .. } => {}
        }
    }
    let stream = futures::stream::unfold(body, |mut b| async move {
        if b.finished {
            return None;
        }
        if let Some(d) = b.stall_before.take() {
            tokio::time::sleep(d).await;
        }
        if let Some((at, d)) = b.stall_after
            && b.sent >= at
        {
            b.stall_after = None;
            tokio::time::sleep(d).await;
        }
        if let Some(n) = b.drop_after
            && b.sent >= n
        {
            b.finished = true;
            // Let hyper flush what was sent (it flushes while the body is
            // pending), then fail the body: hyper closes the connection
            // without the terminating chunk.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let e = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault: connection dropped",
            );
            return Some((Err(e), b));
        }
        if b.carry_pos >= b.carry.len() {
            b.carry.clear();
            b.carry_pos = 0;
            if !b.done_generating {
                b.done_generating = b.cursor.fill(&mut b.carry, CHUNK);
            }
            if b.carry.is_empty() {
                return None;
            }
        }
        let mut take = b.carry.len() - b.carry_pos;
        if let Some(n) = b.drop_after {
            take = take.min((n - b.sent) as usize);
        }
        if let Some((at, _)) = b.stall_after {
            take = take.min((at - b.sent) as usize);
        }
        let chunk = Bytes::copy_from_slice(&b.carry[b.carry_pos..b.carry_pos + take]);
        b.carry_pos += take;
        b.sent += take as u64;
        Some((Ok(Frame::data(chunk)), b))
    });
    let mut r = Response::new(BoxBody::new(StreamBody::new(stream)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
