#!/usr/bin/env bash
# Lints the whole workspace as a machine without libdpdk builds it, so the
# "unavailable" build (insane-dpdk-sys without bindings,
# drivers/dpdk/src/unavailable.rs) cannot rot while CI otherwise builds
# with libdpdk. Called by .ci/run; runs on its own too.
#
#   PKG_CONFIG=/bin/false   the pkg-config crate (and the build script's own
#                           pkg-config calls) run /bin/false, so libdpdk is
#                           "not found" even where it is installed
#   INSANE_REQUIRE_DPDK     unset: a missing libdpdk must not fail the build
#   <target dir>/no-dpdk    its own target dir, so the DPDK build's
#                           artifacts stay valid (the build script's
#                           rerun-if-env-changed would otherwise rebuild
#                           insane-dpdk-sys and everything above it twice
#                           per CI run)
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}/no-dpdk"
mkdir -p "$target_dir"
log="$target_dir/check-no-dpdk.log"

status=0
env -u INSANE_REQUIRE_DPDK PKG_CONFIG=/bin/false \
    cargo clippy --workspace --all-targets --all-features --target-dir "$target_dir" \
    -- -D warnings 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
    echo "check-no-dpdk: the workspace without libdpdk does not lint cleanly (log: $log)" >&2
    exit "$status"
fi

# The build script's warning (replayed by Cargo when it did not rerun)
# shows the unavailable mode was really built: were PKG_CONFIG ignored,
# this step would lint the libdpdk build a second time and prove nothing.
if ! grep -q 'DPDK not available: pkg-config cannot find libdpdk' "$log"; then
    echo "check-no-dpdk: insane-dpdk-sys was not built in unavailable mode (PKG_CONFIG=/bin/false ignored?)" >&2
    exit 1
fi
echo "check-no-dpdk: the workspace without libdpdk lints cleanly"
