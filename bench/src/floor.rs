//! The transport floor: what receiving the logs costs with nothing done to
//! them. `kle-bench` runs itself as a child in this mode, against the same
//! fake server right after the exporter: the exporter's own connection code
//! (`connect`, `ApiClient`: kube's client over rustls and hyper, the capped
//! read buffer) requests the same logs with `timestamps=true`, up to the same
//! concurrency, reads every frame and drops it. No scanning, no gzip, no
//! files. Its CPU per GiB is a part of the exporter's that no compression
//! setting or code in the exporter can remove: TLS decryption, the kernel's
//! socket reads, HTTP framing.
//!
//! Usage (internal): kle-bench --transport-floor KUBECONFIG TARGETS CONCURRENCY
//! where TARGETS has one `namespace pod container` per line. Prints the log
//! bytes received.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use kube_log_exporter::api::{ApiClient, RetryPolicy};
use kube_log_exporter::cli::ConnectConfig;

pub fn child_main(args: &[String]) -> Result<(), String> {
    let [kubeconfig, targets, concurrency] = args else {
        return Err("--transport-floor KUBECONFIG TARGETS CONCURRENCY".into());
    };
    let targets = std::fs::read_to_string(targets).map_err(|e| format!("{targets}: {e}"))?;
    let concurrency: usize = concurrency.parse().map_err(|e| format!("{e}"))?;
    let bytes = receive_all(Path::new(kubeconfig), &targets, concurrency)?;
    println!("{bytes}");
    Ok(())
}

/// Request every target's log and drop it; the log bytes received.
fn receive_all(kubeconfig: &Path, targets: &str, concurrency: usize) -> Result<u64, String> {
    let paths: Vec<String> = targets
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(format!(
                "/api/v1/namespaces/{}/pods/{}/log?container={}&timestamps=true",
                f.next()?,
                f.next()?,
                f.next()?
            ))
        })
        .collect();
    let config = ConnectConfig {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
        server: None,
        service_account_dir: PathBuf::from("/nonexistent"),
        insecure_skip_tls_verify: false,
        stream_idle_timeout: Duration::from_secs(60),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let conn = kube_log_exporter::connect::connect(&config)
            .await
            .map_err(|e| e.to_string())?;
        let api = ApiClient::new(conn, RetryPolicy::new(3));
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = Vec::new();
        for path in paths {
            let api = api.clone();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let response = api
                    .send(|| {
                        http::Request::get(path.as_str())
                            .body(Vec::new())
                            .expect("request")
                    })
                    .await
                    .map_err(|_| format!("GET {path} failed"))?;
                let mut body = response.into_body();
                let mut n = 0u64;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("{path}: {e}"))?;
                    if let Ok(data) = frame.into_data() {
                        n += data.len() as u64;
                    }
                }
                Ok::<u64, String>(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(|e| e.to_string())??;
        }
        Ok::<u64, String>(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_apiserver::{
        Cluster, FakeApiServer, GenSpec, LogQuery, Options, full_access_rules, render_log_to,
    };

    /// The floor receives exactly the bytes the exporter is measured on: every
    /// container's whole log, with timestamps.
    #[test]
    fn receives_every_log_byte() {
        let cluster = Cluster::generate(&GenSpec {
            namespaces: 2,
            pods_per_namespace: 3,
            containers_per_pod: 1,
            bytes_per_container: 300_000,
            mix: false,
            seed: 7,
            ..GenSpec::default()
        });
        let query = LogQuery {
            timestamps: true,
            ..LogQuery::default()
        };
        let mut expected = 0u64;
        let mut targets = String::new();
        for pod in &cluster.pods {
            for c in &pod.containers {
                let mut log = Vec::new();
                render_log_to(&c.log, &query, &mut log).unwrap();
                expected += log.len() as u64;
                targets.push_str(&format!("{} {} {}\n", pod.namespace, pod.name, c.name));
            }
        }
        let server = FakeApiServer::start(cluster, Options::default());
        server.add_user("bench", "bench-token", full_access_rules());
        let dir = std::env::temp_dir().join(format!("kle-bench-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, "bench");
        let received = receive_all(&kubeconfig, &targets, 4).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(expected > 6 * 300_000);
        assert_eq!(received, expected);
    }
}
