#!/usr/bin/env bash
# Smoke test of the benchmark harness (issue 8), run by CI after the test
# suite: builds insane-bench in release mode, runs every scenario in quick
# mode (`all --quick --retries 0`, bounded to 2 minutes) and checks that
# report.md, results.json and the plots were written and that no
# contestant FAILED. It checks the harness, not the speed: the numbers of a
# quick run on a busy machine mean little.
#
# Usage: scripts/bench-smoke.sh [OUT_DIR]   (default target/bench-smoke)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/bench-smoke}
limit=120

# wrk for the http scenario (external client); without it that scenario is
# skipped with a note, which this check accepts.
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing wrk"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null ||
            echo "note: could not install wrk; the http scenario will be skipped"
    else
        echo "note: wrk missing and cannot be installed; the http scenario will be skipped"
    fi
fi

# The harness and the example servers its external-client scenarios start
# (built here so that their compilation stays out of the timed run).
cargo build --release -p insane-bench
cargo build --release --example hyper_server --example echo_udp
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
for f in report.md results.json runtime.md udp-rtt.md tcp-echo.md tcp-stream.md http.md udp-rtt-c.md \
    runtime-throughput.png udp-rtt-latency-cdf.png udp-rtt-throughput.png \
    tcp-echo-latency-cdf.png tcp-echo-throughput.png tcp-stream-throughput.png; do
    if [ ! -s "$out/$f" ]; then
        problems+=("$out/$f is missing or empty")
    elif [[ $f == *.png ]] && [ "$(head -c 4 "$out/$f" | tail -c 3)" != "PNG" ]; then
        problems+=("$out/$f is not a PNG file")
    fi
done
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
