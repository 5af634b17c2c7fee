#!/usr/bin/env bash
# Render every kustomization under manifests/ and validate each object, offline
# and strict (unknown fields are errors), against the Kubernetes schemas of the
# oldest and the newest Kubernetes versions we support.
#
#   scripts/check-manifests.sh
#
# Output (stable paths: the Rust tests read them):
#   target/manifests/base.yaml        kubectl kustomize manifests/base
#   target/manifests/top.yaml         kubectl kustomize manifests  (what `kubectl apply -k manifests/` installs)
#   target/manifests/<overlay>.yaml   kubectl kustomize manifests/overlays/<overlay>  (job, namespaced, ...)
#   target/manifests/validate.log     kubernetes-validate's full output
#
# Needs kubectl (with its built-in kustomize) and python3. kubernetes-validate
# is used from PATH if there; otherwise it is installed with pip, once, into a
# virtualenv under ~/.cache (pinned version below). It validates against the
# JSON schemas shipped inside the package: no network at validation time, and
# where `unshare` allows it the validation runs in an empty network namespace
# to prove so.
set -euo pipefail

# Oldest Kubernetes minor we support (CronJob timeZone is GA since 1.27; Job
# podFailurePolicy is on by default since 1.26). The newest is the newest
# schema set the installed kubernetes-validate ships.
readonly OLDEST_K8S=1.29
readonly KV_PIN=1.37.0

fail() { echo "check-manifests: FAIL: $*" >&2; exit 1; }
note() { echo "check-manifests: $*"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=target/manifests

command -v kubectl >/dev/null || fail "kubectl not found (it renders the kustomizations)"

# --- 1. render -----------------------------------------------------------
# Start empty: a removed overlay must not leave a stale file for the tests.
rm -rf "$out"
mkdir -p "$out"

render() { # name dir
    local name=$1 dir=$2
    kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err" ||
        fail "kubectl kustomize $dir: $(cat "$out/$name.err")"
    rm -f "$out/$name.err"
    grep -q '^kind: ' "$out/$name.yaml" || fail "kubectl kustomize $dir rendered no object"
    note "rendered $dir -> $out/$name.yaml ($(grep -c '^kind: ' "$out/$name.yaml") objects: $(grep '^kind: ' "$out/$name.yaml" | cut -d' ' -f2 | paste -sd, -))"
}

render base manifests/base
render top manifests
overlays=0
for k in manifests/overlays/*/kustomization.yaml; do
    [ -e "$k" ] || continue
    dir=$(dirname "$k")
    render "$(basename "$dir")" "$dir"
    overlays=$((overlays + 1))
done
[ "$overlays" -gt 0 ] || fail "no overlay found under manifests/overlays/"

# --- 2. validate ---------------------------------------------------------
kv=$(command -v kubernetes-validate || true)
if [ -z "$kv" ]; then
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/kube-log-exporter/kubernetes-validate-$KV_PIN
    if [ ! -x "$venv/bin/kubernetes-validate" ]; then
        command -v python3 >/dev/null || fail "python3 not found (needed to install kubernetes-validate)"
        note "installing kubernetes-validate==$KV_PIN into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || fail "python3 -m venv $venv (on Debian: apt-get install python3-venv)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_PIN" ||
            fail "pip install kubernetes-validate==$KV_PIN"
    fi
    kv=$venv/bin/kubernetes-validate
fi

# The newest schema set shipped is the tool's default version; a wide COLUMNS
# keeps argparse from wrapping "Defaults to X" over two lines.
newest=$(COLUMNS=200 "$kv" --help | sed -n 's/.*Defaults to \([0-9][0-9.]*[0-9]\).*/\1/p' | head -n 1)
[ -n "$newest" ] || fail "could not read the newest supported Kubernetes version from '$kv --help'"
newest=$(echo "$newest" | cut -d. -f1-2)
note "kubernetes-validate $("$kv" --version) at $kv; Kubernetes versions: $OLDEST_K8S and $newest"

offline=()
if unshare -rn true 2>/dev/null; then
    offline=(unshare -rn)
    note "validating with no network (empty network namespace)"
fi

files=("$out"/*.yaml)
set +e
"${offline[@]}" "$kv" --strict -k "$OLDEST_K8S" -k "$newest" "${files[@]}" >"$out/validate.log" 2>&1
rc=$?
set -e

# kubernetes-validate prints INFO for a pass, ERROR for a schema violation, and
# only WARN (exit 0!) for an object whose kind has no schema: a misspelt kind
# or apiVersion must fail here too, so anything but INFO is an error.
problems=$(grep -v '^INFO ' "$out/validate.log" || true)
passed=$(grep -c '^INFO ' "$out/validate.log" || true)
if [ "$rc" -ne 0 ] || [ -n "$problems" ]; then
    echo "$problems" >&2
    fail "kubernetes-validate exit $rc; full output in $out/validate.log"
fi
[ "$passed" -gt 0 ] || fail "kubernetes-validate validated nothing; see $out/validate.log"
note "OK: $passed object validations passed (${#files[@]} files x Kubernetes $OLDEST_K8S and $newest, strict)"
