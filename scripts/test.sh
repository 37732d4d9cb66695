#!/usr/bin/env bash
# Runs every check and test on a fresh machine, as root: installs what the tests need, checks
# that the committed eBPF objects match their sources, then format, lint, the test suite and
# every benchmark in its --quick mode (seconds each: a broken benchmark fails here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# The VM tests boot Debian 12's Linux 6.1 under QEMU (crates/test-support/src/vm.rs): here a
# kernel that cannot be downloaded is a failure, not a skip. Prepared once, cached.
export TEST_VM_REQUIRED=1
scripts/vm/prepare.sh 6.1 >/dev/null
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# Tests run in release (the eBPF receivers keep up with load tests only in optimised builds)
# and one at a time: the capture tests watch the whole host, so a neighbour test is noise.
cargo test --workspace --release -- --test-threads="${TEST_THREADS:-1}"
# Figures of a --quick run are not to be quoted; the run proves each benchmark still works.
scripts/bench all --quick
