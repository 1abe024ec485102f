#!/bin/sh
# Runs the rx_frame fuzz target for a bounded time (default 60 s), from the
# seed corpus. Needs a nightly toolchain and cargo-fuzz; without them it
# says so and exits 0 (the proptest in stack/tests/stack_prop.rs is then the
# check). Under CI=true a missing tool is a failure.
set -eu
cd "$(dirname "$0")"
secs="${1:-60}"
if ! rustup run nightly rustc --version >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: nightly toolchain or cargo-fuzz missing (cargo install cargo-fuzz)" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
mkdir -p corpus/rx_frame
exec cargo +nightly fuzz run rx_frame corpus/rx_frame seeds/rx_frame -- \
    -max_total_time="$secs" -print_final_stats=1
