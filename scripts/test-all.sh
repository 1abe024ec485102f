#!/usr/bin/env bash
# The whole test suite: what the README's second set-up command runs and
# what CI runs (.ci/run calls this script). Installs the system packages
# the tests need (idempotently, only when missing), then runs every test of
# the workspace and prints a one-line total.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the network-namespace and driver tests and for the
# DPDK driver (libdpdk-dev, pkg-config, libclang-dev).
./scripts/install-deps.sh

# The DPDK tests must not vanish silently: a build without libdpdk fails
# (insane-dpdk-sys's build script) instead of building DPDK "unavailable".
# --all-features below enables the `dpdk` feature.
export INSANE_REQUIRE_DPDK=1

mkdir -p target
log=target/test-all.log
status=0
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log" || status=$?

# One closing line for the whole run, summed over every test binary.
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*; ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
ignored=$(grep -E '^test result: ' "$log" | grep -Eo '[0-9]+ ignored' | awk '{s+=$1} END {print s+0}')
echo
echo "total: ${passed} passed, ${failed} failed, ${ignored} skipped" | tee target/test-summary.txt
exit "$status"
