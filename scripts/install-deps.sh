#!/usr/bin/env bash
# System packages the tests and the `dpdk` feature need, installed only
# when missing (idempotent). Called by scripts/test-all.sh (the README's
# test command) and by .ci/run before its clippy step: one place.
#
#   iproute2, ethtool          network-namespace test hosts (ip, ethtool)
#   nftables                   frame loss in a bridge namespace (nft), for
#                              the reliable-datagram tests over real paths
#   libdpdk-dev, pkg-config,   the DPDK driver (drivers/dpdk-sys: pkg-config
#   libclang-dev               finds libdpdk, bindgen needs libclang)
#
# Without root or apt-get it only says what is missing; the build then
# works without DPDK (insane-dpdk-sys "unavailable" mode) unless
# INSANE_REQUIRE_DPDK=1.
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if ! pkg-config --exists libdpdk 2>/dev/null; then
    need+=(libdpdk-dev)
fi
if command -v dpkg >/dev/null 2>&1; then
    dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
elif ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    need+=(libclang-dev)
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "note: ${need[*]} missing and cannot be installed (not root or no apt-get)"
fi
