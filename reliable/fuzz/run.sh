#!/bin/sh
# Runs the endpoint_rx fuzz target for a bounded time (default 60 s). Needs
# a nightly toolchain and cargo-fuzz; without them it says so and exits 0
# (the proptest in reliable/tests/prop.rs is then the check). Under
# CI=true a missing tool is a failure.
set -eu
cd "$(dirname "$0")"
secs="${1:-60}"
if ! rustup run nightly rustc --version >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: nightly toolchain or cargo-fuzz missing (cargo install cargo-fuzz)" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
mkdir -p corpus/endpoint_rx
exec cargo +nightly fuzz run endpoint_rx corpus/endpoint_rx -- \
    -max_total_time="$secs" -print_final_stats=1
