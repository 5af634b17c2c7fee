#!/usr/bin/env bash
# make test: validate the manifests, run every test of the workspace, and end
# with one line that totals them ("tests: N passed, N failed"), also written
# to target/test-summary.txt (CI prints it again as its last line).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/check-manifests.sh
mkdir -p target
log=target/test-output.log
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
               END { printf "tests: %d passed, %d failed\n", p, f }' "$log")
echo "$summary" | tee target/test-summary.txt
exit "$status"
