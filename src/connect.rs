//! Config -> kube::Client. Three ways in (PRODUCT.md "Connection and auth"):
//! a kubeconfig, the in-cluster ServiceAccount folder, or `kubectl proxy`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::cli::ConnectConfig;
use crate::error::{Error, Result};

/// A client plus what the manifest and the error sentences need to know about it.
#[derive(Clone)]
pub struct Connection {
    client: Arc<RwLock<Credentials>>,
    /// Kept to rebuild the client when the server rejects its credentials.
    config: kube::Config,
    /// Cluster URL, for messages and the manifest (never carries credentials).
    pub server: String,
    /// How the connection was configured, in words ("kubeconfig /x, context y").
    pub source: String,
    /// The namespace the exporter runs in, when known (in-cluster), to leave its own pods out.
    pub own_namespace: Option<String>,
}

/// The client of one generation of credentials.
struct Credentials {
    generation: u64,
    client: kube::Client,
}

impl Connection {
    /// The current client and its credentials' generation.
    pub fn client(&self) -> (u64, kube::Client) {
        // A poisoned lock only means a refresh panicked; the old client is still valid.
        let current = self.client.read().unwrap_or_else(|p| p.into_inner());
        (current.generation, current.client.clone())
    }

    /// The server answered 401 to a request made with `generation`: build a
    /// new client, which reads the credentials afresh (a rotated ServiceAccount
    /// token file, a refreshed exec plugin token). Requests that saw the same
    /// 401 share one refresh.
    pub fn refresh_credentials(&self, generation: u64) -> Result<()> {
        let mut current = self.client.write().unwrap_or_else(|p| p.into_inner());
        if current.generation != generation {
            return Ok(());
        }
        let client = build_client(&self.config, &self.source)?;
        tracing::info!("the API server rejected the credentials; read them again");
        *current = Credentials {
            generation: generation + 1,
            client,
        };
        Ok(())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

const IN_CLUSTER_HOST: &str = "KUBERNETES_SERVICE_HOST";
const IN_CLUSTER_PORT: &str = "KUBERNETES_SERVICE_PORT";

pub async fn connect(cfg: &ConnectConfig) -> Result<Connection> {
    let (mut config, source, own_namespace) = match (&cfg.server, &cfg.kubeconfig) {
        (Some(server), None) if server.starts_with("http://") => proxy_config(server)?,
        _ => {
            if let Some(path) = &cfg.kubeconfig {
                kubeconfig_config(Some(path), cfg).await?
            } else if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
                kubeconfig_config(None, cfg).await?
            } else if std::env::var_os(IN_CLUSTER_HOST).is_some() {
                in_cluster_config(&cfg.service_account_dir)?
            } else {
                kubeconfig_config(None, cfg).await?
            }
        }
    };
    if let Some(server) = &cfg.server {
        config.cluster_url = parse_url(server)?;
    }
    if cfg.insecure_skip_tls_verify {
        tracing::warn!(
            "--insecure-skip-tls-verify is set: the API server's certificate is NOT verified; anyone on the network path can read and alter what is exported"
        );
        config.accept_invalid_certs = true;
    }
    // Retries are ours (api.rs), bounded and deadline-aware; kube's default
    // retries 429/503/504 up to 15 times with backoff up to 1000 s.
    config.default_retry = false;
    config.connect_timeout = Some(std::time::Duration::from_secs(15));
    // No read timeout here: log streams get their own idle timeout (stream.rs),
    // list requests get a whole-request timeout (api.rs).
    config.read_timeout = None;

    let server = redact_url(&config.cluster_url.to_string());
    let client = build_client(&config, &source)?;
    Ok(Connection {
        client: Arc::new(RwLock::new(Credentials {
            generation: 0,
            client,
        })),
        config,
        server,
        source,
        own_namespace,
    })
}

/// The most response bytes hyper buffers per connection. Its default lets the
/// buffer grow to about 400 KiB on a fast stream, held for as long as the
/// stream is open (10 fast streams: +4 MiB of peak RSS). rustls
/// hands over at most one TLS record (16 KiB) per read, so more buys nothing
/// (bench/RESULTS.md, RSS). API response heads are far smaller.
const HTTP_READ_BUFFER: usize = 32 * 1024;

/// The client for `config`; a failure names the configuration (`source`).
fn build_client(config: &kube::Config, source: &str) -> Result<kube::Client> {
    build_kube_client(config).map_err(|e| Error::Kubeconfig {
        path: source.to_string(),
        message: e.to_string(),
    })
}

/// kube's own client stack (`Client::try_from`), with the HTTP read buffer
/// capped: the same TLS setup (CA, client certificates, exec identities,
/// tls-server-name), authentication and impersonation headers. Retries and
/// read timeouts are off here as in `connect`; the connect timeout is the
/// socket's. A proxy URL in the kubeconfig goes to kube's builder, which
/// reports that this build has no proxy support.
fn build_kube_client(config: &kube::Config) -> std::result::Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config.clone());
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http1_max_buf_size(HTTP_READ_BUFFER)
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

type Built = (kube::Config, String, Option<String>);

fn proxy_config(server: &str) -> Result<Built> {
    let config = kube::Config::new(parse_url(server)?);
    Ok((config, format!("kubectl proxy at {server}"), None))
}

async fn kubeconfig_config(path: Option<&Path>, cfg: &ConnectConfig) -> Result<Built> {
    let (kubeconfig, shown_path) = match path {
        Some(path) => {
            if !path.exists() {
                return Err(Error::NoKubeconfig {
                    tried: format!("{} does not exist", path.display()),
                });
            }
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| kubeconfig_error(&path.display().to_string(), e))?;
            (kubeconfig, path.display().to_string())
        }
        None => match Kubeconfig::from_env() {
            Ok(Some(kubeconfig)) => (kubeconfig, "$KUBECONFIG".to_string()),
            Ok(None) => {
                let default = home_kubeconfig();
                match default.as_deref().filter(|p| p.exists()) {
                    Some(p) => {
                        let kubeconfig = Kubeconfig::read_from(p)
                            .map_err(|e| kubeconfig_error(&p.display().to_string(), e))?;
                        (kubeconfig, p.display().to_string())
                    }
                    None => {
                        return Err(Error::NoKubeconfig {
                            tried: format!(
                                "no --kubeconfig, KUBECONFIG unset, {} missing, not in a pod",
                                default
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_else(|| "~/.kube/config".into())
                            ),
                        });
                    }
                }
            }
            Err(e) => return Err(kubeconfig_error("$KUBECONFIG", e)),
        },
    };
    if let Some(context) = &cfg.context
        && !kubeconfig.contexts.iter().any(|c| &c.name == context)
    {
        let available: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(Error::ContextNotFound {
            context: context.clone(),
            available: if available.is_empty() {
                "no contexts".into()
            } else {
                available.join(", ")
            },
        });
    }
    let context_name = cfg
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| kubeconfig_error(&shown_path, e))?;
    Ok((
        config,
        format!("kubeconfig {shown_path}, context {context_name}"),
        None,
    ))
}

fn kubeconfig_error(path: &str, e: KubeconfigError) -> Error {
    let message = match &e {
        KubeconfigError::CurrentContextNotSet => {
            "it has no current-context; pass --context".to_string()
        }
        other => other.to_string(),
    };
    Error::Kubeconfig {
        path: path.to_string(),
        message,
    }
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config"))
}

/// In-cluster config built from a ServiceAccount folder we can point anywhere
/// (kube's own in-cluster paths are fixed constants). The token goes in as a
/// token *file*, so kube re-reads it as the kubelet rotates it.
fn in_cluster_config(dir: &Path) -> Result<Built> {
    let host = std::env::var(IN_CLUSTER_HOST).unwrap_or_default();
    let port = std::env::var(IN_CLUSTER_PORT).unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let url = parse_url(&format!("https://{host}:{port}"))?;

    let token_path = dir.join("token");
    std::fs::metadata(&token_path).map_err(|e| Error::ServiceAccount {
        path: token_path.clone(),
        message: e.to_string(),
    })?;
    let ca_path = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca_path).map_err(|e| Error::ServiceAccount {
        path: ca_path.clone(),
        message: e.to_string(),
    })?;
    let certs: Vec<Vec<u8>> = pem::parse_many(&ca_pem)
        .map_err(|e| Error::ServiceAccount {
            path: ca_path.clone(),
            message: format!("not a PEM certificate bundle ({e})"),
        })?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(Error::ServiceAccount {
            path: ca_path,
            message: "holds no certificate".into(),
        });
    }
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());

    let mut config = kube::Config::new(url);
    config.root_cert = Some(certs);
    config.auth_info.token_file = Some(token_path.display().to_string());
    if let Some(ns) = &namespace {
        config.default_namespace = ns.clone();
    }
    Ok((
        config,
        format!("in-cluster ServiceAccount ({})", dir.display()),
        namespace,
    ))
}

fn parse_url(server: &str) -> Result<http::Uri> {
    server
        .parse::<http::Uri>()
        .ok()
        .filter(|u| u.scheme().is_some() && u.host().is_some())
        .ok_or_else(|| {
            Error::Usage(format!(
                "server address {:?} is not a URL; write it like https://10.0.0.1:6443",
                redact_url(server)
            ))
        })
}

/// Drop any user:password@ part of a URL before it is shown anywhere.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}{}", &url[..scheme_end + 3], &url[at + 1..])
                .trim_end_matches('/')
                .to_string()
        }
        _ => url.trim_end_matches('/').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(
            redact_url("https://user:pw@host:6443/"),
            "https://host:6443"
        );
        assert_eq!(redact_url("https://host:6443/"), "https://host:6443");
    }
}
