#!/usr/bin/env bash
# The whole test suite: what the README's second set-up command runs and
# what CI runs (.ci/run calls this script). Installs the system packages
# the tests need (idempotently, only when missing), then runs every test of
# the workspace and prints a one-line total.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages for the network-namespace and driver tests.
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "note: ${need[*]} missing and cannot be installed (not root or no apt-get)"
    fi
fi

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
