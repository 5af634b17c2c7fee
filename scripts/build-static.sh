#!/usr/bin/env bash
# The one command that builds the shipped binary: a static (musl) release build.
# The Dockerfile's build stage and CI both run this script, so CI builds
# exactly what the image ships. Prints the binary's path on stdout (cargo's
# own output goes to stderr).
#
# Installs nothing. Needs:
#   rustup target add x86_64-unknown-linux-musl
#   musl-gcc (Debian: apt-get install musl-tools), for ring's C and assembly
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=x86_64-unknown-linux-musl
cargo build --profile dist --locked --target "$target" --bin kube-log-exporter

dir=${CARGO_TARGET_DIR:-target}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
bin=$dir/$target/dist/kube-log-exporter
[ -x "$bin" ] || { echo "build-static: FAIL: no binary at $bin" >&2; exit 1; }
# The image's base (distroless/static) has no libc: a binary that asks for a
# dynamic loader would not start there.
if command -v readelf >/dev/null && grep -q 'program interpreter' <<<"$(readelf -l "$bin")"; then
    echo "build-static: FAIL: $bin is dynamically linked" >&2
    exit 1
fi
echo "$bin"
