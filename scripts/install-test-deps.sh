#!/usr/bin/env bash
# Installs everything the test suite and `scripts/bench all --quick` need on a fresh Debian
# machine (run as root).
# Idempotent: packages already present are skipped by apt/pip.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
  clang llvm libbpf-dev bpftool          # rebuild and check the eBPF objects
  iproute2 iperf3 iputils-ping bridge-utils  # network namespaces, veth, traffic
  curl wrk nginx-light                   # HTTP peers
  prometheus                             # real scraper for the Prometheus exporter
  dnsmasq                                # real DNS server for rdns
  redis-server postgresql mariadb-server mariadb-client  # real database peers
  openssl                                # self-signed certificates for TLS tests
  gcc libc6-dev linux-perf time          # scripts/bench: uprobe-trap-cost, app-nginx-profile, app-overhead
  python3 python3-pip
  qemu-system-x86 busybox-static cpio kmod  # the VM tests on Linux 6.1 (scripts/vm/prepare.sh)
)
PIP_PACKAGES=(
  rotel helm-python-sdk grpcio grpcio-tools kafka-python
  opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Daemons installed by apt start themselves; tests run their own instances on their own ports.
for svc in nginx prometheus dnsmasq redis-server postgresql mariadb; do
  systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
python3 -m pip install -q "${PIP_PACKAGES[@]}"
