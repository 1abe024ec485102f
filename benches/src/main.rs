//! `insane-bench`: the command-line entry point of insane's benchmark
//! harness. Each subcommand is a scenario (see [`scenarios`]) that measures
//! insane side by side with its baselines in the same run; `all` runs
//! every scenario. runtime, udp-rtt, tcp-echo, tcp-stream, qos-mix and
//! xdp-rtt measure each contestant in its own pinned process (this binary
//! re-executed with the hidden first argument `__run`); dpdk-rtt starts
//! two processes of its own per measurement; the scenarios driving
//! external clients (http, udp-rtt-c, tcp-bulk) and grpc start each
//! server as a process of its own. Contestants are measured in
//! alternating rounds ([`rounds`]): the tables give each one's median and
//! its best round. A progress bar runs on a terminal meanwhile.
//!
//! Every run writes into `--out DIR` (default `target/bench-report`):
//! - `<scenario>.md` and `<scenario>.json`: one scenario's table and data;
//! - `report.md`: every scenario's table, then each contestant relative to
//!   insane's best per row;
//! - `results.json`: git commit, kernel, CPU model and count, timestamp,
//!   the command line and options, and every scenario's parameters and
//!   numbers (medians, samples, errors, ratios, latency CDFs);
//! - `<scenario>-latency-cdf.png` (udp-rtt, tcp-echo) and
//!   `<scenario>-throughput.png`: the plots.
//!
//! and prints a short summary on stdout (a single scenario also prints its
//! table).
//!
//! ```text
//! cargo run --release -p insane-bench -- runtime [--quick] [--out DIR]
//! cargo run --release -p insane-bench -- udp-rtt [--quick] [--sizes 64,1024,16384]
//! cargo run --release -p insane-bench -- tcp-echo [--quick] [--connections 1,64]
//! cargo run --release -p insane-bench -- tcp-stream [--quick] [--writes 64,65536]
//! cargo run --release -p insane-bench -- http [--quick]        # wrk, h2load
//! cargo run --release -p insane-bench -- grpc [--quick]        # tonic unary calls
//! cargo run --release -p insane-bench -- udp-rtt-c [--quick]   # C client
//! cargo run --release -p insane-bench -- tcp-bulk [--quick]    # socat
//! cargo run --release -p insane-bench -- qos-mix [--quick]     # QoS endpoints
//! cargo run --release -p insane-bench -- all [--quick] [--out DIR]
//! ```

/// Prints a log line on stderr, above the progress bar (see [`progress`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::progress::line(&format!($($arg)*))
    };
}

mod meta;
mod plot;
mod progress;
mod report;
mod rounds;
mod scenarios;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use report::Report;
use scenarios::Common;
use scenarios::net::NetArgs;

/// Side-by-side benchmarks of insane against tokio and std.
#[derive(Parser, Debug)]
#[command(name = "insane-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Executor micro-benchmarks: spawn+join throughput, yield throughput,
    /// cross-core round trip latency, timer insert+cancel cost; insane vs
    /// tokio current-thread vs tokio multi-thread (2 workers).
    Runtime(scenarios::runtime::Args),
    /// UDP ping-pong round-trip time over 127.0.0.1 (64 B, 1 KiB, 16 KiB):
    /// insane (io_uring, epoll), tokio, monoio, glommio, std blocking, std
    /// busy-poll.
    UdpRtt(scenarios::udp_rtt::Args),
    /// TCP echo, 64 B / 1 KiB / 16 KiB requests on 1, 16 and 64 connections:
    /// requests/s, latency and CPU per request of each contestant's 1-core
    /// echo server.
    TcpEcho(scenarios::tcp_echo::Args),
    /// One TCP connection streaming in 64 B, 1 KiB, 16 KiB and 64 KiB writes:
    /// Gbit/s, writes/s and CPU per write.
    TcpStream(scenarios::tcp_stream::Args),
    /// HTTP/1.1 keep-alive GET load by `wrk` and `h2load --h1` against
    /// insane's `examples/hyper_server` (1 core, each driver) and its tokio
    /// and monoio twins; then wrk (HTTP/1.1) and h2load (HTTP/2) against
    /// the axum example of examples/web and `axum::serve` on tokio;
    /// skipped without wrk and h2load.
    Http(scenarios::external::Args),
    /// gRPC unary calls (rate, p50/p99) against the tonic example of
    /// examples/web (1 core, each driver) and tonic's own server on tokio,
    /// by a tonic client on tokio in a process of its own.
    Grpc(scenarios::external::Args),
    /// UDP ping-pong measured by a C client (`benches/c/udp_pingpong.c`,
    /// built with `cc`) against insane's `examples/echo_udp`.
    UdpRttC(scenarios::external::Args),
    /// Bulk TCP by `socat` through insane's `examples/echo_tcp` (1 core,
    /// each driver) and its tokio twin: Gbit/s; skipped without socat.
    TcpBulk(scenarios::external::Args),
    /// QoS endpoints (`insane::qos`): 32 B RTT per QoS class (critical,
    /// normal, reliable) against tokio UDP, and the latency of a critical
    /// flow while a bulk flow saturates the same core, with and without the
    /// per-core transmit scheduler (tables `qos-mix` and `qos-mix-bulk`),
    /// and latency isolation with the priority features on and off on
    /// kernel UDP, AF_XDP (root) and DPDK memif (feature `dpdk`) (tables
    /// `qos-mix-isolation-udp`, `-af_xdp`, `-dpdk-memif`).
    QosMix(scenarios::qos_mix::Args),
    /// UDP ping-pong RTT over veth between two network namespaces (root):
    /// insane AF_XDP (QoS endpoint) vs insane io_uring busy-poll vs std
    /// busy-poll vs tokio vs the raw AF_XDP driver; 64 B and 1472 B.
    XdpRtt(scenarios::xdp_rtt::Args),
    /// DPDK net_memif two-process ping-pong RTT p50/p99 and one-way
    /// message rate: insane's stack vs a raw rx/tx_burst loop (feature
    /// `dpdk`).
    DpdkRtt(scenarios::dpdk_rtt::Args),
    /// Reliable messages between two network namespaces through a bridge
    /// (root): insane's reliable datagrams over AF_XDP and busy-poll UDP
    /// against best effort on the same paths, the io_uring TCP endpoint
    /// and tokio TCP; 32 B RTT, 1 MiB throughput, both with 1% loss.
    Reliable(scenarios::reliable::Args),
    /// runtime, udp-rtt, tcp-echo, tcp-stream, http, grpc, udp-rtt-c, tcp-bulk, qos-mix,
    /// xdp-rtt and reliable (as root, with network namespaces) and dpdk-rtt (built with
    /// the `dpdk` feature) with their defaults; writes every scenario's
    /// files, `<out>/report.md`,
    /// `<out>/results.json` and the plots.
    All(NetArgs),
}

fn main() -> ExitCode {
    if let Some(code) = scenarios::dpdk_rtt::child_main() {
        return code;
    }
    if let Some(code) = scenarios::reliable::child_main() {
        return code;
    }
    if let Some(code) = scenarios::qos_isolation::child_main() {
        return code;
    }
    // A measurement's own process (see scenarios::net::each_contestant_process).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(scenarios::net::CHILD_COMMAND) {
        scenarios::child_main(&argv[2..]);
    }
    // A baseline server of the external scenarios (scenarios::baseline_servers).
    if argv.get(1).map(String::as_str) == Some(scenarios::baseline_servers::SERVE_COMMAND) {
        scenarios::baseline_servers::serve_main(&argv[2..]);
    }
    // The grpc scenario's load client (scenarios::grpc_load).
    if argv.get(1).map(String::as_str) == Some(scenarios::grpc_load::LOAD_COMMAND) {
        scenarios::grpc_load::load_main(&argv[2..]);
    }
    let cli = Cli::parse();
    let info = meta::RunInfo::collect();
    progress::start();
    let (reports, common, net) = match &cli.scenario {
        Scenario::Runtime(args) => (vec![scenarios::runtime::run(args)], &args.common, None),
        Scenario::UdpRtt(args) => (
            vec![scenarios::udp_rtt::run(args)],
            &args.net.common,
            Some(&args.net),
        ),
        Scenario::TcpEcho(args) => (
            vec![scenarios::tcp_echo::run(args)],
            &args.net.common,
            Some(&args.net),
        ),
        Scenario::TcpStream(args) => (
            vec![scenarios::tcp_stream::run(args)],
            &args.net.common,
            Some(&args.net),
        ),
        Scenario::Http(args) => (vec![scenarios::external::http(args)], &args.common, None),
        Scenario::Grpc(args) => (vec![scenarios::web::grpc(args)], &args.common, None),
        Scenario::UdpRttC(args) => (vec![scenarios::external::udp_c(args)], &args.common, None),
        Scenario::TcpBulk(args) => (
            vec![scenarios::external::tcp_bulk(args)],
            &args.common,
            None,
        ),
        Scenario::QosMix(args) => (
            scenarios::qos_mix::run(args),
            &args.net.common,
            Some(&args.net),
        ),
        Scenario::XdpRtt(args) => (vec![scenarios::xdp_rtt::run(args)], &args.common, None),
        Scenario::DpdkRtt(args) => (vec![scenarios::dpdk_rtt::run(args)], &args.common, None),
        Scenario::Reliable(args) => (vec![scenarios::reliable::run(args)], &args.common, None),
        Scenario::All(args) => (all(args), &args.common, Some(args)),
    };
    let mut ok = true;
    let mut plots = Vec::new();
    for report in &reports {
        ok &= write(report, &common.out);
        match plot::write(report, &common.out) {
            Ok(files) => {
                for f in &files {
                    say!("wrote {}", f.display());
                }
                plots.extend(files);
            }
            Err(e) => {
                say!("cannot draw the plots of {}: {e}", report.scenario);
                ok = false;
            }
        }
    }
    ok &= write_combined(&reports, &info, common);
    ok &= write_results(&reports, &info, common, net, &plots);
    progress::finish();
    if !matches!(cli.scenario, Scenario::All(_)) {
        for report in &reports {
            print!("\n{}", report.to_markdown());
        }
    }
    print!("\n{}", summary(&reports, &common.out, &plots));
    if scenarios::abandoned_threads() {
        // A hung runtime thread would keep the process alive forever.
        std::process::exit(2);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every scenario with the shared options and each one's defaults.
fn all(args: &NetArgs) -> Vec<Report> {
    use scenarios::{external, qos_mix, runtime, tcp_echo, tcp_stream, udp_rtt, web};
    let runtime = runtime::Args {
        common: args.common.clone(),
        no_pin: args.no_pin,
        idle: args.idle,
    };
    let udp = udp_rtt::Args {
        net: args.clone(),
        sizes: udp_rtt::DEFAULT_SIZES
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect(),
    };
    let echo = tcp_echo::Args {
        net: args.clone(),
        sizes: Vec::new(),
        connections: Vec::new(),
        duration: None,
    };
    let stream = tcp_stream::Args {
        net: args.clone(),
        mib: None,
        writes: Vec::new(),
    };
    let ext = external::Args {
        common: args.common.clone(),
        no_pin: args.no_pin,
        connections: Vec::new(),
        duration: None,
    };
    let qos = qos_mix::Args { net: args.clone() };
    let mut reports = vec![
        runtime::run(&runtime),
        udp_rtt::run(&udp),
        tcp_echo::run(&echo),
        tcp_stream::run(&stream),
        external::http(&ext),
        web::grpc(&ext),
        external::udp_c(&ext),
        external::tcp_bulk(&ext),
    ];
    reports.extend(qos_mix::run(&qos));
    // Bypass scenarios need their host capability (xdp-rtt: root and
    // network namespaces); without it they are left out with the reason
    // instead of filling a report with failed cells.
    match insane_testhosts::TestHosts::available() {
        Ok(()) => reports.push(scenarios::xdp_rtt::run(&scenarios::xdp_rtt::Args {
            common: args.common.clone(),
            sizes: vec![64, 1472],
            no_pin: args.no_pin,
        })),
        Err(why) => say!("xdp-rtt left out of `all`: {why}"),
    }
    match insane_testhosts::TestHosts::available() {
        Ok(()) => reports.push(scenarios::reliable::run(&scenarios::reliable::Args {
            common: args.common.clone(),
            no_pin: args.no_pin,
        })),
        Err(why) => say!("reliable left out of `all`: {why}"),
    }
    // dpdk-rtt: only in a build with the `dpdk` feature and libdpdk.
    if cfg!(insane_dpdk_available) {
        reports.push(scenarios::dpdk_rtt::run(&scenarios::dpdk_rtt::Args {
            common: args.common.clone(),
            size: 64,
            burst: 32,
        }));
    } else {
        say!(
            "dpdk-rtt left out of `all`: insane-bench was built without DPDK \
             (build with --features dpdk, libdpdk-dev installed)"
        );
    }
    reports
}

/// Writes one scenario's files; false (and a message) on failure.
fn write(report: &Report, out: &Path) -> bool {
    match report.write(out) {
        Ok((md, json)) => {
            say!("wrote {} and {}", md.display(), json.display());
            true
        }
        Err(e) => {
            say!("cannot write the report to {}: {e}", out.display());
            false
        }
    }
}

/// Writes `text` to `path` (creating its directory); false (and a
/// message) on failure.
fn write_file(path: &Path, text: &str) -> bool {
    let dir = path.parent().unwrap_or(Path::new("."));
    match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(path, text)) {
        Ok(()) => {
            say!("wrote {}", path.display());
            true
        }
        Err(e) => {
            say!("cannot write {}: {e}", path.display());
            false
        }
    }
}

/// Writes `out/report.md`: a title, the machine and the command, then
/// every scenario's Markdown in order and the plots.
fn write_combined(reports: &[Report], info: &meta::RunInfo, common: &Common) -> bool {
    let mut text = String::from("# insane-bench report\n\n");
    let args: Vec<&str> = info.command.iter().skip(1).map(String::as_str).collect();
    let _ = writeln!(
        text,
        "Command: `cargo run --release -p insane-bench -- {}`. Absolute numbers depend on \
         the machine; ratios within one run are what compares.\n",
        args.join(" ")
    );
    let _ = writeln!(
        text,
        "Machine: {} ({} CPUs online, {} available), Linux {}; commit {}{}; {}.\n",
        info.cpu_model,
        info.cpus_online,
        info.cpus_available,
        info.kernel,
        info.git_commit,
        if info.git_dirty == Some(true) {
            " with local changes"
        } else {
            ""
        },
        info.timestamp
    );
    for report in reports {
        text.push_str(&report.to_markdown());
        text.push('\n');
        for kind in ["latency-cdf", "throughput"] {
            let png = format!("{}-{kind}.png", report.scenario);
            if common.out.join(&png).exists() {
                let _ = writeln!(text, "![{} {kind}]({png})\n", report.scenario);
            }
        }
    }
    write_file(&common.out.join("report.md"), &text)
}

/// Writes `out/results.json`: the run's facts and options, then every
/// scenario's JSON (see [`Report::to_json`]).
fn write_results(
    reports: &[Report],
    info: &meta::RunInfo,
    common: &Common,
    net: Option<&NetArgs>,
    plots: &[PathBuf],
) -> bool {
    let mut options = serde_json::json!({
        "quick": common.quick,
        "out": common.out.display().to_string(),
        "repeats": common.repeats,
        "warmup": common.warmup,
        "timeout_s": common.timeout,
        "only": common.only,
        "note": common.note,
    });
    if let (Some(net), Some(map)) = (net, options.as_object_mut()) {
        map.insert(
            "idle".into(),
            format!("{:?}", net.idle).to_lowercase().into(),
        );
        map.insert("no_pin".into(), net.no_pin.into());
        map.insert("contestants".into(), net.contestants.clone().into());
        map.insert("retries".into(), net.retries.into());
    }
    let value = serde_json::json!({
        "tool": "insane-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "run": info,
        "options": options,
        "scenarios": reports.iter().map(Report::to_json).collect::<Vec<_>>(),
        "plots": plots
            .iter()
            .filter_map(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
    });
    match serde_json::to_string_pretty(&value) {
        Ok(text) => write_file(&common.out.join("results.json"), &(text + "\n")),
        Err(e) => {
            say!("cannot serialise results.json: {e}");
            false
        }
    }
}

/// The short summary printed on stdout: per headline row (throughputs and
/// p50 latencies) insane's best against the best other contestant, then
/// failures and where the files are.
fn summary(reports: &[Report], out: &Path, plots: &[PathBuf]) -> String {
    let mut lines = vec![vec![
        "scenario".to_owned(),
        "benchmark".to_owned(),
        "insane's best".to_owned(),
        "best other".to_owned(),
        "insane/other".to_owned(),
    ]];
    let mut failed = 0;
    for report in reports {
        for row in &report.rows {
            failed += row.cells.iter().filter(|c| c.error.is_some()).count();
            let headline = row.unit.higher_is_better() || row.benchmark.contains("p50");
            let Some((bi, bv)) = report.insane_best(row).filter(|_| headline) else {
                continue;
            };
            // The best non-insane contestant of the row.
            let other = row
                .cells
                .iter()
                .enumerate()
                .filter(|(i, _)| !report.systems[*i].starts_with("insane"))
                .filter_map(|(i, c)| Some((i, c.value?)))
                .fold(None::<(usize, f64)>, |best, (i, v)| match best {
                    Some((_, b)) if report::speedup(&row.unit, v, b).is_none_or(|r| r <= 1.0) => {
                        best
                    }
                    _ => Some((i, v)),
                });
            let fmt = |v: f64| match row.unit {
                report::Unit::Nanos => row.unit.format(v),
                _ => format!("{} {}", row.unit.format(v), row.unit.label()),
            };
            let (other_text, ratio) = match other {
                Some((oi, ov)) => (
                    format!("{} {}", report.systems[oi], fmt(ov)),
                    report::speedup(&row.unit, bv, ov)
                        .map_or("-".to_owned(), |r| format!("{r:.2}x")),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            lines.push(vec![
                report.scenario.clone(),
                row.benchmark.clone(),
                format!("{} {}", report.systems[bi], fmt(bv)),
                other_text,
                ratio,
            ]);
        }
    }
    let mut text = String::from(
        "Summary: insane's best against the best other contestant per headline row \
         (insane/other > 1: insane ahead).\n\n",
    );
    if lines.len() > 1 {
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(t, w)| format!("{t:<w$}"))
                .collect();
            let _ = writeln!(text, "  {}", cells.join("  ").trim_end());
        }
    }
    let _ = writeln!(
        text,
        "\n{}",
        if failed == 0 {
            "Every contestant completed.".to_owned()
        } else {
            format!("{failed} measurement(s) FAILED; see report.md.")
        }
    );
    let _ = writeln!(
        text,
        "Report: {}, data: {}, plots: {}.",
        out.join("report.md").display(),
        out.join("results.json").display(),
        plots.len()
    );
    text
}
