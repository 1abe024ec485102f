#!/usr/bin/env bash
# Smoke test of the benchmark harness (issue 8), run by CI after the test
# suite: builds insane-bench in release mode, runs every scenario in quick
# mode (`all --quick --retries 0`, bounded to 8 minutes) and checks that
# report.md, results.json and the plots were written and that no
# contestant FAILED. It checks the harness, not the speed: the numbers of a
# quick run on a busy machine mean little.
#
# Usage: scripts/bench-smoke.sh [OUT_DIR]   (default target/bench-smoke)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/bench-smoke}
limit=480

# External clients (Debian packages): wrk and h2load (nghttp2-client) for
# the http scenario, socat for tcp-bulk. Installed when missing (once: apt
# is not touched when they are all there); without one, its rows or
# scenario are skipped with a note in the report, which this check accepts.
missing=()
for pair in wrk:wrk h2load:nghttp2-client socat:socat; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
            echo "note: could not install ${missing[*]}; the scenarios using them will be skipped"
    else
        echo "note: ${missing[*]} missing and cannot be installed; the scenarios using them will be skipped"
    fi
fi

# The harness and the example servers its external-client scenarios start
# (built here so that their compilation stays out of the timed run).
# With libdpdk (installed by scripts/install-deps.sh, which the test command
# runs) the harness is built with DPDK so that `all` includes dpdk-rtt.
features=()
if pkg-config --exists libdpdk 2>/dev/null; then
    features=(--features dpdk)
    export INSANE_REQUIRE_DPDK=1
elif [ "${CI:-}" = true ]; then
    echo "bench smoke: libdpdk missing under CI (run scripts/install-deps.sh)" >&2
    exit 1
fi
cargo build --release -p insane-bench "${features[@]}"
cargo build --release --example hyper_server --example echo_udp --example echo_tcp
cargo build --release -p insane-web-examples --example axum --example tonic
bin="${CARGO_TARGET_DIR:-target}/release/insane-bench"

rm -rf "$out"
mkdir -p "$out"
log="$out/run.log"
start=$(date +%s)
status=0
# --timeout 30: a hung contestant fails its cell quickly instead of using
# up the whole budget.
timeout --kill-after=10 "$limit" "$bin" all --quick --retries 0 --timeout 30 --out "$out" \
    >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))

problems=()
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    problems+=("did not finish within ${limit} s")
elif [ "$status" != 0 ]; then
    problems+=("exited with status $status")
fi
for f in report.md results.json runtime.md udp-rtt.md tcp-echo.md tcp-stream.md http.md grpc.md udp-rtt-c.md tcp-bulk.md \
    runtime-throughput.png udp-rtt-latency-cdf.png udp-rtt-throughput.png \
    tcp-echo-latency-cdf.png tcp-echo-throughput.png tcp-stream-throughput.png; do
    if [ ! -s "$out/$f" ]; then
        problems+=("$out/$f is missing or empty")
    elif [[ $f == *.png ]] && [ "$(head -c 4 "$out/$f" | tail -c 3)" != "PNG" ]; then
        problems+=("$out/$f is not a PNG file")
    fi
done
# xdp-rtt, reliable and qos-mix's AF_XDP isolation table need root and
# network namespaces: required under CI (which has
# them), left out of `all` with a printed reason elsewhere.
for f in xdp-rtt.md reliable.md qos-mix-isolation-af_xdp.md; do
    if [ "${CI:-}" = true ] && [ ! -s "$out/$f" ]; then
        problems+=("$out/$f is missing (CI runs as root with network namespaces)")
    fi
done
if [ ${#features[@]} -gt 0 ]; then
    for f in dpdk-rtt.md qos-mix-isolation-dpdk-memif.md; do
        [ -s "$out/$f" ] || problems+=("$out/$f is missing (insane-bench was built with DPDK)")
    done
fi
# A contestant that cannot run on this host (monoio or glommio without
# io_uring, say) is left out with its reason in the report ("not measured
# (skipped)"): shown here, not a failure. A crash, hang or error of a
# contestant that did run is a FAILED cell, which is.
if [ -s "$out/report.md" ]; then
    grep -h -- 'not measured (skipped)' "$out/report.md" | sort -u | sed 's/^- /note: /' || true
fi
if [ -s "$out/report.md" ] && grep -q FAILED "$out/report.md"; then
    problems+=("a contestant FAILED: $(grep -h -- '- FAILED on' "$out/report.md" | head -5 | tr '\n' ' ')")
fi
if [ -s "$out/results.json" ]; then
    for key in '"git_commit"' '"kernel"' '"cpu_model"' '"timestamp"' '"scenarios"'; do
        grep -q "$key" "$out/results.json" || problems+=("results.json lacks $key")
    done
    if grep -q '"error"' "$out/results.json"; then
        problems+=("results.json records a failed measurement")
    fi
fi

if [ ${#problems[@]} -gt 0 ]; then
    echo "bench smoke FAILED after ${elapsed} s:"
    printf '  - %s\n' "${problems[@]}"
    echo "--- last lines of $log:"
    tail -n 40 "$log"
    exit 1
fi
# The run's short summary (its stdout), then the verdict.
sed -n '/^Summary:/,$p' "$log"
echo "bench smoke OK in ${elapsed} s: report.md, results.json and $(ls "$out"/*.png | wc -l) plots in $out, every contestant completed."
