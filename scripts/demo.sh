#!/usr/bin/env bash
# make demo: start the fake API server with a small mixed cluster (plain and
# multi-container pods, init and ephemeral containers, a restarted container,
# a pending pod, a waiting container, one namespace the demo user may not
# read), export it for real into ./demo-logs, show what was written, stop.
#
#   KLE_BIN=/path/to/kube-log-exporter scripts/demo.sh   # use another build (CI: the static one)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked -p fake-apiserver -p kube-log-exporter >&2
bin=${KLE_BIN:-target/release/kube-log-exporter}
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

target/release/fake-apiserver --mix --namespaces 3 --pods 30 --containers-per-pod 2 \
    --bytes-per-container 200000 --kubeconfig-out "$work/kubeconfig" --ready-file "$work/ready" \
    > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { echo "demo: the fake API server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
echo "demo: fake cluster $(cut -d' ' -f2 "$work/ready") (3 namespaces, 30 pods, and one more namespace the demo user may not read)"

rm -rf demo-logs
set +e
"$bin" --kubeconfig "$work/kubeconfig" --output demo-logs
code=$?
set -e

echo
echo "demo: files written (demo-logs/):"
(cd demo-logs && find . -type f | sort | head -40) || true
total=$(find demo-logs -type f | wc -l)
[ "$total" -gt 40 ] && echo "  ... $total files in all"
run=$(ls -d demo-logs/runs/*/ | head -1)
echo
echo "demo: first lines of one log (zcat ${run}ns-0/pod-1/app.log.gz | head -3):"
{ zcat "${run}ns-0/pod-1/app.log.gz" || true; } | head -3 | cut -c1-120 || true
echo
"$bin" verify "$run" | tail -3 || true
echo
case $code in
    0) echo "demo: exit code 0: everything selected was exported or legitimately skipped" ;;
    3) echo "demo: exit code 3 (partial): the demo cluster has a namespace the demo user may not read; see errors in ${run}manifest.json" ;;
    *) echo "demo: the export failed with exit code $code" >&2; exit "$code" ;;
esac
