//! `fake-apiserver`: serve a generated cluster for `make demo` and `make bench`.
//!
//! Prints one line `ready <url>` on stdout (and into `--ready-file`) once it
//! serves, then stays quiet until SIGTERM / SIGINT, or until its stdin closes
//! when stdin is a pipe (so a parent that dies takes it down).

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use fake_apiserver::{Cluster, FakeApiServer, GenSpec, Options, Rule, full_access_rules};

/// The identity the kubeconfig is written for.
const DEMO_USER: &str = "system:serviceaccount:log-exporter:log-exporter";
/// With --mix, the namespace the demo identity may not read.
const FORBIDDEN_NAMESPACE: &str = "restricted";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A fake Kubernetes API server serving generated pod logs"
)]
struct Args {
    /// Pods in total, spread evenly over the namespaces.
    #[arg(long, default_value_t = 10)]
    pods: usize,
    /// Namespaces (ns-0, ns-1, ...).
    #[arg(long, default_value_t = 1)]
    namespaces: usize,
    /// Approximate log bytes per container.
    #[arg(long, default_value_t = 100_000)]
    bytes_per_container: u64,
    /// Containers per plain pod.
    #[arg(long, default_value_t = 1)]
    containers_per_pod: usize,
    /// Cycle pods through interesting shapes (multi-container, init, ephemeral,
    /// restarted, pending, waiting) and add a namespace the user cannot read.
    #[arg(long)]
    mix: bool,
    /// Plain HTTP without authentication, like `kubectl proxy`.
    #[arg(long)]
    plain_http: bool,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the generated logs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve at most this many items per list page.
    #[arg(long)]
    page_size_cap: Option<usize>,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Also write the `ready <url>` line here (atomically).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn build_cluster(a: &Args) -> Cluster {
    let namespaces = a.namespaces.max(1);
    let mut cluster = Cluster::generate(&GenSpec {
        namespaces,
        pods_per_namespace: a.pods.div_ceil(namespaces),
        containers_per_pod: a.containers_per_pod,
        bytes_per_container: a.bytes_per_container,
        mix: a.mix,
        seed: a.seed,
        ..GenSpec::default()
    });
    // Keep exactly --pods pods: drop from the last namespaces first.
    while cluster.pods.len() > a.pods {
        let last_ns = cluster
            .pods
            .iter()
            .map(|p| p.namespace.clone())
            .max()
            .unwrap();
        let idx = cluster
            .pods
            .iter()
            .rposition(|p| p.namespace == last_ns)
            .unwrap();
        cluster.pods.remove(idx);
    }
    if a.mix {
        let restricted = Cluster::generate(&GenSpec {
            namespaces: 1,
            pods_per_namespace: 2,
            bytes_per_container: a.bytes_per_container.min(10_000),
            namespace_prefix: "restricted-".into(),
            seed: a.seed.wrapping_add(99),
            ..GenSpec::default()
        });
        cluster.namespaces.push(FORBIDDEN_NAMESPACE.to_string());
        for mut p in restricted.pods {
            p.namespace = FORBIDDEN_NAMESPACE.to_string();
            p.uid = fake_apiserver::uid_for(&p.namespace, &p.name);
            cluster.pods.push(p);
        }
    }
    cluster
}

/// Full read access, or with --mix everything but the forbidden namespace.
fn rules(a: &Args, cluster: &Cluster) -> Vec<Rule> {
    if !a.mix {
        return full_access_rules();
    }
    let mut rules = vec![Rule::new(&["get", "list"], "namespaces", None)];
    for ns in cluster
        .namespaces
        .iter()
        .filter(|n| *n != FORBIDDEN_NAMESPACE)
    {
        rules.push(Rule::new(&["get", "list"], "pods", Some(ns)));
        rules.push(Rule::new(&["get"], "pods/log", Some(ns)));
    }
    rules
}

fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("fake-{:x}{:x}", nanos, std::process::id())
}

fn stdin_is_pipe() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata("/proc/self/fd/0")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(false)
}

fn main() {
    let args = Args::parse();
    let cluster = build_cluster(&args);
    let rules = rules(&args, &cluster);
    let server = FakeApiServer::start(
        cluster,
        Options {
            tls: !args.plain_http,
            page_size_cap: args.page_size_cap,
            port: args.port,
            ..Options::default()
        },
    );
    server.add_user(DEMO_USER, &token(), rules);
    server.write_kubeconfig(&args.kubeconfig_out, DEMO_USER);

    let line = format!("ready {}\n", server.url());
    if let Some(path) = &args.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &line)
            .and_then(|_| std::fs::rename(&tmp, path))
            .expect("write --ready-file");
    }
    let mut out = std::io::stdout();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let stdin_closed = async {
            if stdin_is_pipe() {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                    let _ = tx.send(());
                });
                let _ = rx.await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = stdin_closed => {}
        }
    });
    drop(server);
}
