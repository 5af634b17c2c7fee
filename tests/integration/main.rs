//! Integration tests: each runs the real `kube-log-exporter` binary against
//! the fake API server (tests/fake-apiserver) and checks what it wrote:
//! file contents byte for byte after gunzip, manifest entries, exit codes.

mod util;

mod connect;
mod doctor;
mod dry_run;
mod errors;
mod export;
mod faults;
mod incremental;
mod manifests;
mod progress;
mod shards;
mod verify;
