#!/usr/bin/env bash
# make bench: build the release binaries, then run the benchmark (bench/,
# package kle-bench): the real exporter against the in-process fake API
# server for scenarios A, B, C, 10 MiB and 1 KiB RSS baselines (M, S) and C
# over plain HTTP; the gzip-only yardstick and the transport floor (receiving
# alone); the gzip backend comparison and the line scanner's cost.
# Prints one report (markdown tables) and writes bench/results.json.
#
#   scripts/bench.sh                  # everything (~6 min after the build)
#   scripts/bench.sh --repeat 5       # median of 5 runs per figure (default 3)
#   scripts/bench.sh --only A,C       # some scenarios (A B C M S C-http)
#   scripts/bench.sh --skip-parts     # no backend / scanner tables
#   BENCH_TIMEOUT=1800 scripts/bench.sh   # overall bound in seconds (default 1500)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked -p kube-log-exporter -p kle-bench >&2
mkdir -p bench
# Every exporter run is also bounded (--timeout-secs); this bounds the whole.
timeout --kill-after=10 "${BENCH_TIMEOUT:-1500}" \
    target/release/kle-bench \
    --exporter target/release/kube-log-exporter \
    --json bench/results.json \
    --work target/bench-work \
    --timeout-secs 300 \
    "$@"
