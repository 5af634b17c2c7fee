# syntax=docker/dockerfile:1
# kube-log-exporter: a static (musl) binary on distroless, no shell, non-root.
#   docker build -t ghcr.io/kube-log-exporter/kube-log-exporter:0.1.0 .
# The binary is built by scripts/build-static.sh, the same script CI runs.

FROM rust:1.95-bookworm AS build
# musl-gcc compiles ring's C and assembly for the musl target.
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies in a layer of their own, rebuilt only when the manifests or the
# lock file change: build once with stub sources. The workspace's other members
# (the fake API server, a dev-dependency, and the benchmark) need only their
# Cargo.toml here: they are part of Cargo.lock but not built for --bin
# kube-log-exporter.
COPY Cargo.toml Cargo.lock ./
COPY tests/fake-apiserver/Cargo.toml tests/fake-apiserver/Cargo.toml
COPY bench/Cargo.toml bench/Cargo.toml
COPY scripts/build-static.sh scripts/build-static.sh
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && bash scripts/build-static.sh

# The real sources. COPY keeps their modification times, which can be older
# than the stub build's outputs; cargo would then keep the stub binary. Touch
# them so the crate itself is rebuilt.
COPY src src
RUN find src -type f -exec touch {} + \
 && bash scripts/build-static.sh

FROM gcr.io/distroless/static-debian12:nonroot
# static-debian12 has CA certificates (kubeconfig servers with public CAs) and
# /etc/passwd with the nonroot user; in a cluster the ServiceAccount's ca.crt
# is what verifies the API server.
LABEL org.opencontainers.image.title="kube-log-exporter" \
      org.opencontainers.image.description="Copy every line Kubernetes pods print into gzip files, run after run, with a read-only ServiceAccount." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/x86_64-unknown-linux-musl/dist/kube-log-exporter /usr/local/bin/kube-log-exporter
# 65532 = distroless's "nonroot"; the CronJob's pod runs as the same uid/gid.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kube-log-exporter"]
