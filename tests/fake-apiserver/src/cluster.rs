//! The cluster model: plain data that tests build, mutate and hand to the server.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

/// What the server knows: namespaces and pods. Order does not matter; the server
/// serves lists sorted like etcd keys (namespace, then name).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub namespaces: Vec<String>,
    pub pods: Vec<Pod>,
}

#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `None`: not scheduled yet; the log endpoint answers 204 No Content.
    pub node_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub phase: String,
    pub containers: Vec<Container>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    Regular,
    Ephemeral,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Waiting { reason: String },
    Terminated { exit_code: i32 },
}

#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    pub kind: ContainerKind,
    pub state: ContainerState,
    /// `containerd://<64 hex>`.
    pub container_id: String,
    pub restart_count: i32,
    /// The current instance's log.
    pub log: LogSpec,
    /// The instance before the last restart; `None` => `previous=true` answers 400.
    pub previous: Option<LogSpec>,
}

/// A container log, as a pure function of these fields and the line index
/// (see [`crate::render_log`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSpec {
    pub seed: u64,
    /// Lines visible now.
    pub lines: u64,
    /// Typical content bytes per line, newline excluded.
    pub line_len: usize,
    /// Timestamp of line 0.
    pub start: DateTime<Utc>,
    /// Time between timestamp groups.
    pub step_nanos: u64,
    /// More than 1: that many consecutive lines share exactly one timestamp.
    pub lines_per_timestamp: u64,
    /// Sprinkle bytes such as 0xff 0xfe 0x00 into the content of some lines.
    pub invalid_utf8: bool,
    /// Every Nth line (index % N == N - 1) is exactly this many bytes long.
    pub long_line_every: Option<(u64, usize)>,
}

impl LogSpec {
    /// About `approx_bytes` of plain ASCII lines of ~100 bytes, one line every
    /// 1.5 ms starting 2026-11-22T01:00:00Z (plus a per-seed offset).
    pub fn with_bytes(seed: u64, approx_bytes: u64) -> LogSpec {
        let line_len = 100usize;
        let start = Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0).unwrap()
            + chrono::Duration::milliseconds((seed % 3_600_000) as i64);
        // Each line is "<index> <~line_len bytes>\n".
        let rough = approx_bytes / (line_len as u64 + 1) + 1;
        let prefix = rough.to_string().len() as u64 + 1;
        LogSpec {
            seed,
            lines: approx_bytes.div_ceil(line_len as u64 + 1 + prefix),
            line_len,
            start,
            step_nanos: 1_500_000,
            lines_per_timestamp: 1,
            invalid_utf8: false,
            long_line_every: None,
        }
    }

    /// Timestamp of the line after the last visible one (where a new instance
    /// may start).
    pub fn end_time(&self) -> DateTime<Utc> {
        crate::logs::line_time(self, self.lines)
    }
}

impl Container {
    /// A running regular container with the given log.
    pub fn running(name: &str, log: LogSpec) -> Container {
        Container {
            name: name.to_string(),
            kind: ContainerKind::Regular,
            state: ContainerState::Running,
            container_id: container_id_for(log.seed, 0),
            restart_count: 0,
            log,
            previous: None,
        }
    }

    /// Simulates a restart: the current log becomes `previous`, a new instance
    /// (new container ID, new seed, `new_lines` lines starting after the old
    /// instance ended) becomes current, `restart_count` goes up by one.
    pub fn restart(&mut self, new_lines: u64) {
        let old = self.log.clone();
        let mut new = old.clone();
        new.seed = old.seed.wrapping_mul(31).wrapping_add(7);
        new.lines = new_lines;
        new.start = old.end_time() + chrono::Duration::seconds(2);
        self.previous = Some(old);
        self.log = new;
        self.restart_count += 1;
        self.container_id = container_id_for(self.log.seed, self.restart_count as u64);
        if !matches!(self.state, ContainerState::Waiting { .. }) {
            self.state = ContainerState::Running;
        }
    }
}

impl Cluster {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    pub fn pod_mut(&mut self, namespace: &str, name: &str) -> Option<&mut Pod> {
        self.pods
            .iter_mut()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// Removes a pod; returns whether it existed.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> bool {
        let before = self.pods.len();
        self.pods
            .retain(|p| !(p.namespace == namespace && p.name == name));
        before != self.pods.len()
    }

    /// A container of a pod, for live mutation in tests.
    pub fn container_mut(
        &mut self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Option<&mut Container> {
        self.pod_mut(namespace, pod)?
            .containers
            .iter_mut()
            .find(|c| c.name == container)
    }

    /// Builds a cluster: `namespaces` x `pods_per_namespace` pods with
    /// `containers_per_pod` running containers of ~`bytes_per_container` bytes.
    /// With `mix`, the pods cycle through the interesting shapes (see [`GenSpec::mix`]).
    pub fn generate(spec: &GenSpec) -> Cluster {
        let mut cluster = Cluster::default();
        let mut seq = 0u64;
        for n in 0..spec.namespaces {
            let ns = format!("{}{}", spec.namespace_prefix, n);
            cluster.namespaces.push(ns.clone());
            for p in 0..spec.pods_per_namespace {
                let shape = if spec.mix { p % MIX_SHAPES } else { 0 };
                cluster
                    .pods
                    .push(generated_pod(spec, &ns, p, shape, &mut seq));
            }
        }
        cluster
    }
}

/// Input of [`Cluster::generate`].
#[derive(Clone, Debug)]
pub struct GenSpec {
    pub namespaces: usize,
    pub pods_per_namespace: usize,
    pub containers_per_pod: usize,
    pub bytes_per_container: u64,
    /// Namespace names are `{prefix}{i}`; default "ns-".
    pub namespace_prefix: String,
    /// Cycle the pods of each namespace through these shapes:
    /// 0 plain (containers_per_pod running containers), 1 single container,
    /// 2 init container (terminated, exit 0) + app, 3 app + ephemeral debug
    /// container, 4 restarted app (restart_count 1, previous log),
    /// 5 pending pod (no node, containers waiting ContainerCreating),
    /// 6 app running + sidecar waiting (ImagePullBackOff).
    pub mix: bool,
    pub seed: u64,
}

/// Number of pod shapes `GenSpec::mix` cycles through.
pub const MIX_SHAPES: usize = 7;

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            namespaces: 1,
            pods_per_namespace: 1,
            containers_per_pod: 1,
            bytes_per_container: 10_000,
            namespace_prefix: "ns-".to_string(),
            mix: false,
            seed: 1,
        }
    }
}

fn generated_pod(spec: &GenSpec, ns: &str, p: usize, shape: usize, seq: &mut u64) -> Pod {
    let name = format!("pod-{p}");
    let mut next_log = |bytes: u64| {
        *seq += 1;
        LogSpec::with_bytes(spec.seed.wrapping_mul(1_000_003).wrapping_add(*seq), bytes)
    };
    let b = spec.bytes_per_container;
    let mut containers = Vec::new();
    match shape {
        1 => containers.push(Container::running("app", next_log(b))),
        2 => {
            let mut init = Container::running("init", next_log(b / 10 + 1));
            init.kind = ContainerKind::Init;
            init.state = ContainerState::Terminated { exit_code: 0 };
            containers.push(init);
            containers.push(Container::running("app", next_log(b)));
        }
        3 => {
            containers.push(Container::running("app", next_log(b)));
            let mut debug = Container::running("debugger", next_log(b / 10 + 1));
            debug.kind = ContainerKind::Ephemeral;
            containers.push(debug);
        }
        4 => {
            let mut app = Container::running("app", next_log(b / 2 + 1));
            app.restart(app.log.lines);
            containers.push(app);
        }
        5 => {
            let mut app = Container::running("app", next_log(0));
            app.state = ContainerState::Waiting {
                reason: "ContainerCreating".to_string(),
            };
            app.container_id = String::new();
            containers.push(app);
        }
        6 => {
            containers.push(Container::running("app", next_log(b)));
            let mut side = Container::running("sidecar", next_log(0));
            side.state = ContainerState::Waiting {
                reason: "ImagePullBackOff".to_string(),
            };
            side.container_id = String::new();
            containers.push(side);
        }
        _ => {
            for c in 0..spec.containers_per_pod.max(1) {
                let cname = if spec.containers_per_pod <= 1 {
                    "app".to_string()
                } else {
                    format!("c{c}")
                };
                containers.push(Container::running(&cname, next_log(b)));
            }
        }
    }
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), format!("app-{}", p % 3));
    labels.insert(
        "tier".to_string(),
        if p.is_multiple_of(2) { "web" } else { "worker" }.to_string(),
    );
    let (node_name, phase) = if shape == 5 {
        (None, "Pending")
    } else {
        (Some(format!("node-{}", p % 4)), "Running")
    };
    Pod {
        namespace: ns.to_string(),
        uid: uid_for(ns, &name),
        name,
        node_name,
        labels,
        phase: phase.to_string(),
        containers,
    }
}

/// A deterministic RFC 4122-looking UID for a pod.
pub fn uid_for(namespace: &str, name: &str) -> String {
    let a = fnv(namespace.as_bytes(), 0x9e37);
    let b = fnv(name.as_bytes(), a);
    let c = crate::logs::mix64(a ^ b.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (b >> 32) as u32,
        (b >> 16) as u16,
        (b & 0xfff) as u16,
        (c >> 52) as u16,
        c & 0xffff_ffff_ffff
    )
}

/// A deterministic `containerd://<64 hex>` ID.
pub fn container_id_for(seed: u64, instance: u64) -> String {
    let mut s = String::from("containerd://");
    let mut h = seed ^ instance.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..4 {
        h = crate::logs::mix64(h.wrapping_add(0x632b_e59b_d9b4_e019));
        s.push_str(&format!("{h:016x}"));
    }
    s
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
