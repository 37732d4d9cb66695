#!/usr/bin/env bash
# Runs every check and test on a fresh machine, as root: installs what the tests need, checks
# that the committed eBPF objects match their sources, then format, lint and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# Tests run in release (the eBPF receivers keep up with load tests only in optimised builds)
# and one at a time: the capture tests watch the whole host, so a neighbour test is noise.
cargo test --workspace --release -- --test-threads="${TEST_THREADS:-1}"
