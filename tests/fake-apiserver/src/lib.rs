//! A small fake Kubernetes API server for kube-log-exporter's tests, demo and
//! benchmark. It serves namespaces, pods and `pods/log` the way a real
//! kube-apiserver + kubelet do (status codes, `Status` bodies and wording,
//! paging, selectors, log query semantics), over HTTPS with token / client
//! certificate authentication and a small RBAC table, or over plain HTTP like
//! `kubectl proxy`.
//!
//! The server runs in its own thread with its own tokio runtime, so plain
//! synchronous tests can use it; dropping [`FakeApiServer`] stops it.
//!
//! Notes on the API (differences from the first sketch):
//! - `faults()` returns `&Faults`, whose methods take `&self`.
//! - Token rotation is `FakeApiServer::rotate_token(user, new_token)`.
//! - `Stats::requests` is a `Vec<RequestRecord>` (method, path, raw query);
//!   `Stats::paths()` gives `"path?query"` strings.
//! - `Options` also has `anonymous_auth` (requests without credentials become
//!   `system:anonymous` instead of 401) and `port` (0 = any).
//! - Timestamps use the kubelet's real format, RFC3339NanoFixed: nine fraction
//!   digits, trailing zeros kept (see `logs.rs`). Lines longer than 16 KiB are
//!   split in CRI records like containerd does, each with its own timestamp
//!   prefix when `timestamps=true`, and `tailLines` counts records.
//! - Extra helpers: `Container::running`, `Container::restart`,
//!   `Cluster::{pod, pod_mut, container_mut, delete_pod}`, `namespace_rules`.

mod auth;
mod cluster;
mod faults;
mod kubeconfig;
mod list;
mod logs;
mod objects;
mod rbac;
mod selectors;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use auth::{Identity, UserInfo};
pub use cluster::{
    Cluster, Container, ContainerKind, ContainerState, GenSpec, LogSpec, MIX_SHAPES, Pod,
    container_id_for, uid_for,
};
pub use faults::{Faults, LogFault};
pub use logs::{CRI_MAX_LINE, LogQuery, format_timestamp, line_time, render_log, render_log_to};
pub use rbac::{Rule, full_access_rules, namespace_rules};
pub use selectors::{LabelReq, parse_label_selector};

use auth::Users;
use kubeconfig::Credential;
use server::State;

/// How the server is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// false: plain HTTP like `kubectl proxy`: no authentication, everything allowed.
    pub tls: bool,
    /// Serve at most this many items per page when the client sends `limit`.
    pub page_size_cap: Option<usize>,
    /// Name in the serving certificate. "localhost" (default) also gets the
    /// 127.0.0.1 IP SAN; any other name is the only SAN (a wrong-host test).
    pub tls_host: String,
    /// Requests without credentials are `system:anonymous` (then RBAC decides)
    /// instead of 401. Default false.
    pub anonymous_auth: bool,
    /// TCP port on 127.0.0.1; 0 = any free port.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: true,
            page_size_cap: None,
            tls_host: "localhost".to_string(),
            anonymous_auth: false,
            port: 0,
        }
    }
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// Raw (still percent-encoded) query string, "" when none.
    pub query: String,
    /// When the server received it (the benchmark orders lists and log requests by it).
    pub at: std::time::Instant,
}

/// Counters for assertions.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub max_concurrent_log_streams: u64,
    pub open_log_streams: u64,
    pub log_requests: u64,
    pub list_requests: u64,
    pub requests: Vec<RequestRecord>,
}

impl Stats {
    /// Every request as `"path"` or `"path?query"`, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.requests
            .iter()
            .map(|r| {
                if r.query.is_empty() {
                    r.path.clone()
                } else {
                    format!("{}?{}", r.path, r.query)
                }
            })
            .collect()
    }
}

pub struct FakeApiServer {
    state: Arc<State>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    cert_serial: AtomicU64,
}

impl FakeApiServer {
    /// Starts serving on 127.0.0.1 (port `options.port`, 0 = any) in a new
    /// thread. Panics if the port cannot be bound.
    pub fn start(cluster: Cluster, options: Options) -> FakeApiServer {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", options.port)).expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let pki = options.tls.then(|| tls::Pki::new(&options.tls_host));
        let state = Arc::new(State {
            cluster: Mutex::new(cluster),
            rv: AtomicU64::new(1000),
            users: Mutex::new(Users::default()),
            faults: Faults::default(),
            stats: Mutex::new(Stats::default()),
            options,
            pki,
            addr,
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    server::serve(st, listener, rx).await;
                });
                rt.shutdown_background();
            })
            .expect("spawn server thread");
        FakeApiServer {
            state,
            shutdown: tx,
            thread: Some(thread),
            cert_serial: AtomicU64::new(1),
        }
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.state.options.tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.state.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// The CA certificate (PEM); empty without TLS.
    pub fn ca_pem(&self) -> String {
        self.state
            .pki
            .as_ref()
            .map(|p| p.ca_pem.clone())
            .unwrap_or_default()
    }

    /// Registers (or replaces) a bearer-token user with its RBAC rules.
    pub fn add_user(&self, name: &str, token: &str, rules: Vec<Rule>) {
        let mut users = self.state.users.lock().unwrap();
        let e = users.by_name.entry(name.to_string()).or_default();
        e.token = Some(token.to_string());
        e.rules = rules;
    }

    /// Makes `new_token` the only valid token of `user` (the old one gets 401).
    pub fn rotate_token(&self, user: &str, new_token: &str) {
        let mut users = self.state.users.lock().unwrap();
        let e = users
            .by_name
            .get_mut(user)
            .expect("rotate_token: unknown user");
        e.token = Some(new_token.to_string());
    }

    /// Issues a client certificate (CN = user, O = groups) signed by the CA and
    /// gives the user these rules. Returns (cert pem, key pem).
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
        rules: Vec<Rule>,
    ) -> (String, String) {
        let pki = self
            .state
            .pki
            .as_ref()
            .expect("issue_client_cert needs tls");
        let serial = self.cert_serial.fetch_add(1, Ordering::SeqCst);
        let (cert, key) = pki.issue_client_cert(user, groups, serial);
        let mut users = self.state.users.lock().unwrap();
        let e = users.by_name.entry(user.to_string()).or_default();
        e.cert = Some((cert.clone(), key.clone()));
        e.groups = groups.iter().map(|g| g.to_string()).collect();
        e.rules = rules;
        (cert, key)
    }

    /// The kubeconfig YAML for `user` (token if it has one, else its client
    /// certificate); without TLS, no CA and no credentials.
    pub fn kubeconfig(&self, user: &str) -> String {
        let users = self.state.users.lock().unwrap();
        let ca = self.ca_pem();
        if !self.state.options.tls {
            return kubeconfig::kubeconfig_yaml(&self.url(), None, user, Credential::None);
        }
        let e = users
            .by_name
            .get(user)
            .unwrap_or_else(|| panic!("kubeconfig: unknown user {user}"));
        let cred = match (&e.token, &e.cert) {
            (Some(t), _) => Credential::Token(t),
            (None, Some((c, k))) => Credential::ClientCert {
                cert_pem: c,
                key_pem: k,
            },
            (None, None) => Credential::None,
        };
        kubeconfig::kubeconfig_yaml(&self.url(), Some(&ca), user, cred)
    }

    /// Writes [`Self::kubeconfig`] to `path` (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path, user: &str) {
        kubeconfig::write_private(path, self.kubeconfig(user).as_bytes())
            .expect("write kubeconfig");
    }

    /// Writes `token`, `ca.crt` and `namespace` into `dir`, like
    /// /var/run/secrets/kubernetes.io/serviceaccount. `user` needs a token.
    pub fn write_service_account_dir(&self, dir: &Path, user: &str, namespace: &str) {
        let token = {
            let users = self.state.users.lock().unwrap();
            users
                .by_name
                .get(user)
                .and_then(|e| e.token.clone())
                .unwrap_or_else(|| panic!("write_service_account_dir: user {user} has no token"))
        };
        kubeconfig::write_service_account_dir(dir, &token, &self.ca_pem(), namespace)
            .expect("write service account dir");
    }

    pub fn stats(&self) -> Stats {
        self.state.stats.lock().unwrap().clone()
    }

    /// Forgets the recorded requests and counters (the max stream count too).
    pub fn reset_stats(&self) {
        let mut s = self.state.stats.lock().unwrap();
        let open = s.open_log_streams;
        *s = Stats {
            open_log_streams: open,
            ..Stats::default()
        };
    }

    /// Reads or mutates the live cluster (append lines, restart, delete...).
    /// Bumps the resourceVersion.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let r = f(&mut self.state.cluster.lock().unwrap());
        self.state.rv.fetch_add(1, Ordering::SeqCst);
        r
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
