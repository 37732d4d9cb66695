# syntax=docker/dockerfile:1
# tapline's container image: a release build on rust:1.95 (Debian bookworm), run on
# debian:bookworm-slim. Build from the repository root:
#   docker build -t tapline:0.1.0 .
# The eBPF objects are committed (crates/ebpf/objects) and embedded in the binary, so the
# builder needs no clang. See docs/deploy.md for how the image is run and why as root.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tapline \
    && install -m 0755 target/release/tapline /usr/local/bin/tapline

FROM debian:bookworm-slim
# CA certificates for the OTLP exporter's TLS (rustls reads the system store).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/tapline /usr/local/bin/tapline
# Root, on purpose: loading eBPF programs, attaching to interfaces and reading other
# processes' /proc files need capabilities. Kubernetes cannot give a non-root process
# capabilities without file capabilities plus allowPrivilegeEscalation: true, and a binary
# with file capabilities refuses to start when the pod grants fewer of them. The manifests
# instead run this root user with every capability dropped but BPF, PERFMON, NET_ADMIN,
# SYS_PTRACE and DAC_READ_SEARCH, no privilege escalation and a read-only root filesystem.
USER 0:0
EXPOSE 9400 9401
ENTRYPOINT ["/usr/local/bin/tapline"]
CMD ["run"]
