# kube-log-exporter: the commands a newcomer and CI use.
#   make demo   a local fake cluster plus a real export from it, into ./demo-logs
#   make test   every test (the same command CI runs)
CARGO ?= cargo

.PHONY: build test lint demo bench image static manifests clean

build:
	$(CARGO) build --release --locked --bin kube-log-exporter

# Manifests are rendered and validated first (the Rust tests also read them),
# then every test of the workspace; the last line totals them.
test:
	bash scripts/test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

manifests:
	bash scripts/check-manifests.sh

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

# The container image (needs a Docker engine; CI builds the same static binary with `make static`).
image:
	docker build -t kube-log-exporter:dev .

static:
	bash scripts/build-static.sh

clean:
	$(CARGO) clean
	rm -rf demo-logs
