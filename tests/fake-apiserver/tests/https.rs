//! Real HTTPS requests against the server: token and client-certificate
//! authentication, paging, logs, errors and faults.

use std::sync::Arc;
use std::time::Duration;

use fake_apiserver::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// The body ended with the terminating chunk.
    complete: bool,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn client_config(ca_pem: &str, cert: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// One HTTP/1.1 request with `Connection: close`; reads until EOF.
async fn request(
    s: &FakeApiServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    cert: Option<&(String, String)>,
    body: &str,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut raw = Vec::new();
    if s.url().starts_with("https") {
        let connector = tokio_rustls::TlsConnector::from(client_config(&s.ca_pem(), cert));
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(req.as_bytes()).await.unwrap();
        let _ = tls.read_to_end(&mut raw).await;
    } else {
        let mut tcp = tcp;
        tcp.write_all(req.as_bytes()).await.unwrap();
        let _ = tcp.read_to_end(&mut raw).await;
    }
    parse(raw)
}

fn parse(raw: Vec<u8>) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut rest = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return Reply {
            status,
            head,
            body: rest.to_vec(),
            complete: true,
        };
    }
    let mut body = Vec::new();
    let mut complete = false;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            complete = true;
            break;
        }
        let data = &rest[eol + 2..];
        if data.len() < size {
            body.extend_from_slice(data);
            break;
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size..];
        if rest.len() < 2 {
            break;
        }
        rest = &rest[2..];
    }
    Reply {
        status,
        head,
        body,
        complete,
    }
}

fn cluster() -> Cluster {
    let mut c = Cluster::generate(&GenSpec {
        namespaces: 2,
        pods_per_namespace: 5,
        bytes_per_container: 20_000,
        mix: true,
        ..Default::default()
    });
    c.namespaces.push("x".into());
    for i in 0..5 {
        let mut p = c.pods[0].clone();
        p.namespace = "x".into();
        p.name = format!("p{i}");
        p.uid = uid_for("x", &p.name);
        c.pods.push(p);
    }
    c
}

fn ns_x_log() -> LogSpec {
    cluster().pod("x", "p0").unwrap().containers[0].log.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_list_paging_and_log() {
    let s = FakeApiServer::start(cluster(), Options::default());
    s.add_user(
        "system:serviceaccount:log-exporter:log-exporter",
        "tok",
        full_access_rules(),
    );
    assert!(s.url().starts_with("https://127.0.0.1:"));

    let r = request(
        &s,
        "GET",
        "/api/v1/namespaces/x/pods?limit=2",
        Some("tok"),
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["kind"], "PodList");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p0", "p1"]);
    assert_eq!(v["metadata"]["remainingItemCount"], 3);
    let cont = v["metadata"]["continue"].as_str().unwrap().to_string();
    let r = request(
        &s,
        "GET",
        &format!("/api/v1/namespaces/x/pods?limit=10&continue={cont}"),
        Some("tok"),
        None,
        "",
    )
    .await;
    let v = r.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    assert!(v["metadata"].get("continue").is_none());

    let r = request(
        &s,
        "GET",
        "/api/v1/namespaces/x/pods/p0/log?timestamps=true",
        Some("tok"),
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain")
    );
    assert!(r.complete);
    let expected = render_log(
        &ns_x_log(),
        &LogQuery {
            timestamps: true,
            ..Default::default()
        },
    );
    assert_eq!(r.body, expected);

    let r = request(
        &s,
        "GET",
        "/api/v1/namespaces/x/pods/p0/log?tailLines=3&limitBytes=50",
        Some("tok"),
        None,
        "",
    )
    .await;
    assert_eq!(
        r.body,
        render_log(
            &ns_x_log(),
            &LogQuery {
                tail_lines: Some(3),
                limit_bytes: Some(50),
                ..Default::default()
            }
        )
    );

    let st = s.stats();
    assert_eq!(st.list_requests, 2);
    assert_eq!(st.log_requests, 2);
    assert_eq!(st.max_concurrent_log_streams, 1);
    assert_eq!(st.open_log_streams, 0);
    assert_eq!(st.paths()[0], "/api/v1/namespaces/x/pods?limit=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_rbac_errors() {
    let s = FakeApiServer::start(cluster(), Options::default());
    let sa = "system:serviceaccount:log-exporter:log-exporter";
    s.add_user(sa, "tok", namespace_rules("x"));

    let r = request(&s, "GET", "/api/v1/pods", None, None, "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "Unauthorized");
    assert_eq!(
        request(&s, "GET", "/api/v1/pods", Some("nope"), None, "")
            .await
            .status,
        401
    );

    let r = request(
        &s,
        "GET",
        "/api/v1/namespaces/kube-system/pods",
        Some("tok"),
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(
        v["message"],
        format!(
            "pods is forbidden: User \"{sa}\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
        )
    );
    assert_eq!(v["reason"], "Forbidden");
    assert_eq!(v["code"], 403);
    let r = request(
        &s,
        "GET",
        "/api/v1/namespaces/ns-0/pods/pod-0/log",
        Some("tok"),
        None,
        "",
    )
    .await;
    assert_eq!(
        r.json()["message"],
        format!(
            "pods \"pod-0\" is forbidden: User \"{sa}\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"ns-0\""
        )
    );

    // Token rotation: the old token stops working.
    s.rotate_token(sa, "tok2");
    assert_eq!(
        request(
            &s,
            "GET",
            "/api/v1/namespaces/x/pods",
            Some("tok"),
            None,
            ""
        )
        .await
        .status,
        401
    );
    assert_eq!(
        request(
            &s,
            "GET",
            "/api/v1/namespaces/x/pods",
            Some("tok2"),
            None,
            ""
        )
        .await
        .status,
        200
    );

    // Client certificate identity: CN and O.
    let cert = s.issue_client_cert("alice", &["dev", "ops"], full_access_rules());
    let r = request(&s, "GET", "/api/v1/pods?limit=1", None, Some(&cert), "").await;
    assert_eq!(r.status, 200);
    let r = request(
        &s,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        None,
        Some(&cert),
        "{}",
    )
    .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert_eq!(v["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        v["status"]["userInfo"]["groups"],
        serde_json::json!(["dev", "ops", "system:authenticated"])
    );

    let body = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":"kube-system","verb":"list","resource":"pods"}}}"#;
    let r = request(
        &s,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some("tok2"),
        None,
        body,
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"]["allowed"], false);
    let r = request(
        &s,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        None,
        Some(&cert),
        body,
    )
    .await;
    assert_eq!(r.json()["status"]["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_errors_like_the_kubelet() {
    let s = FakeApiServer::start(
        cluster(),
        Options {
            tls: false,
            ..Default::default()
        },
    );
    assert!(s.url().starts_with("http://"));
    let get = |p: String| {
        let s = &s;
        async move { request(s, "GET", &p, None, None, "").await }
    };
    // Mix shapes (ns-0): pod-0 plain, pod-1 single, pod-2 init+app, pod-3 app+ephemeral,
    // pod-4 restarted; ns-1: pod-0 plain ... (5 pods per ns, so shapes 5 and 6 are not here).
    s.with_cluster(|c| {
        let mut p = c.pod("ns-0", "pod-3").unwrap().clone();
        p.name = "two".into();
        p.containers
            .push(Container::running("side", LogSpec::with_bytes(9, 100)));
        c.pods.push(p);
        let mut pending = c.pod("ns-0", "pod-1").unwrap().clone();
        pending.name = "pending".into();
        pending.node_name = None;
        pending.containers[0].state = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
        };
        c.pods.push(pending);
        let mut waiting = c.pod("ns-0", "pod-1").unwrap().clone();
        waiting.name = "waiting".into();
        waiting.containers[0].state = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
        };
        c.pods.push(waiting);
    });
    let r = get("/api/v1/namespaces/ns-0/pods/two/log".into()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "a container name must be specified for pod two, choose one of: [app side debugger]"
    );
    assert_eq!(r.json()["reason"], "BadRequest");
    let r = get("/api/v1/namespaces/ns-0/pods/two/log?container=nope".into()).await;
    assert_eq!(
        r.json()["message"],
        "container nope is not valid for pod two"
    );
    // One regular container + init: defaults to the regular one.
    assert_eq!(
        get("/api/v1/namespaces/ns-0/pods/pod-2/log".into())
            .await
            .status,
        200
    );
    let r = get("/api/v1/namespaces/ns-0/pods/pending/log".into()).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let r = get("/api/v1/namespaces/ns-0/pods/waiting/log".into()).await;
    assert_eq!(
        r.json()["message"],
        "container \"app\" in pod \"waiting\" is waiting to start: ContainerCreating"
    );
    let r = get("/api/v1/namespaces/ns-0/pods/pod-1/log?previous=true".into()).await;
    assert_eq!(
        r.json()["message"],
        "previous terminated container \"app\" in pod \"pod-1\" not found"
    );
    let r = get("/api/v1/namespaces/ns-0/pods/pod-4/log?previous=true".into()).await;
    assert_eq!(r.status, 200);
    let prev = s.with_cluster(|c| {
        c.pod("ns-0", "pod-4").unwrap().containers[0]
            .previous
            .clone()
            .unwrap()
    });
    assert_eq!(r.body, render_log(&prev, &LogQuery::default()));
    let r = get("/api/v1/namespaces/ns-0/pods/gone/log".into()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "pods \"gone\" not found");
    let r =
        get("/api/v1/namespaces/ns-0/pods/pod-1/log?sinceTime=2026-11-22T01:00:00Z".into()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults() {
    let s = FakeApiServer::start(
        cluster(),
        Options {
            tls: false,
            ..Default::default()
        },
    );
    let get = |p: &'static str| {
        let s = &s;
        async move { request(s, "GET", p, None, None, "").await }
    };
    s.faults().fail_lists(&[429, 503], 2);
    let r = get("/api/v1/pods").await;
    assert_eq!(r.status, 429);
    assert!(
        r.head.contains("Retry-After: 2") || r.head.to_ascii_lowercase().contains("retry-after: 2")
    );
    assert_eq!(get("/api/v1/pods").await.status, 503);
    assert_eq!(get("/api/v1/pods").await.status, 200);

    let r = get("/api/v1/pods?limit=3").await;
    let cont = r.json()["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    s.faults().expire_continue_tokens();
    let r = request(
        &s,
        "GET",
        &format!("/api/v1/pods?limit=3&continue={cont}"),
        None,
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 410);
    let v = r.json();
    assert_eq!(v["reason"], "Expired");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old")
    );
    assert!(v["metadata"]["continue"].is_string());

    s.faults().log_fault(
        "x",
        "p0",
        None,
        LogFault::DropAfter { bytes: 1000 },
        Some(1),
    );
    let r = get("/api/v1/namespaces/x/pods/p0/log").await;
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    assert_eq!(r.body.len(), 1000);
    let r = get("/api/v1/namespaces/x/pods/p0/log").await;
    assert!(r.complete);
    assert_eq!(r.body, render_log(&ns_x_log(), &LogQuery::default()));

    s.faults().log_fault(
        "x",
        "p1",
        Some("app"),
        LogFault::Status { code: 500 },
        Some(2),
    );
    assert_eq!(get("/api/v1/namespaces/x/pods/p1/log").await.status, 500);
    assert_eq!(get("/api/v1/namespaces/x/pods/p1/log").await.status, 500);
    assert_eq!(get("/api/v1/namespaces/x/pods/p1/log").await.status, 200);

    s.faults().log_fault(
        "x",
        "p2",
        None,
        LogFault::StallAfter {
            bytes: 10,
            duration: Duration::from_millis(300),
        },
        None,
    );
    let t = std::time::Instant::now();
    let r = get("/api/v1/namespaces/x/pods/p2/log").await;
    assert!(r.complete && t.elapsed() >= Duration::from_millis(300));

    s.faults().delete_pod_on_first_log("x", "p3");
    assert_eq!(get("/api/v1/namespaces/x/pods/p3/log").await.status, 404);
    assert_eq!(s.stats().open_log_streams, 0);
}

#[test]
fn wrong_host_certificate_is_rejected() {
    let s = FakeApiServer::start(
        Cluster::default(),
        Options {
            tls_host: "wrong.example".into(),
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_config(&s.ca_pem(), None));
        connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .err()
    });
    assert!(err.is_some(), "handshake must fail on a name mismatch");
}

/// Like Go's crypto/tls (kube-apiserver): the server's order decides, and it
/// puts AES-128-GCM first, although a rustls client offers AES-256-GCM first.
#[test]
fn cipher_suite_is_chosen_like_go() {
    let s = FakeApiServer::start(Cluster::default(), Options::default());
    let offered = rustls::crypto::ring::default_provider().cipher_suites;
    assert_eq!(
        offered[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        "the client's first choice must differ from the server's for this test to mean anything"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let suite = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_config(&s.ca_pem(), None));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
    });
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
}

#[test]
fn kubeconfig_and_service_account_files() {
    let s = FakeApiServer::start(Cluster::default(), Options::default());
    s.add_user("bob", "secret-token", full_access_rules());
    let dir = std::env::temp_dir().join(format!("fake-apiserver-test-{}", std::process::id()));
    s.write_kubeconfig(&dir.join("kubeconfig"), "bob");
    let k = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    assert!(k.contains(&format!("server: \"{}\"", s.url())));
    assert!(k.contains("certificate-authority-data: "));
    assert!(k.contains("token: \"secret-token\""));
    assert!(k.contains("current-context: fake"));
    s.issue_client_cert("carol", &["g"], vec![]);
    assert!(s.kubeconfig("carol").contains("client-key-data: "));
    s.write_service_account_dir(&dir.join("sa"), "bob", "log-exporter");
    assert_eq!(
        std::fs::read_to_string(dir.join("sa/token")).unwrap(),
        "secret-token"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("sa/namespace")).unwrap(),
        "log-exporter"
    );
    assert!(
        std::fs::read_to_string(dir.join("sa/ca.crt"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    std::fs::remove_dir_all(dir).unwrap();
}
