//! `insane-bench`: the command-line entry point of insane's benchmark
//! harness. Each subcommand is a scenario (see [`scenarios`]) that measures
//! insane side by side with its baselines in the same process, prints a
//! Markdown table to stdout and writes `<out>/<scenario>.md` and
//! `<out>/<scenario>.json`; `all` runs every scenario and also writes
//! `<out>/report.md`, their tables one after the other.
//!
//! ```text
//! cargo run --release -p insane-bench -- runtime [--quick] [--out DIR]
//! cargo run --release -p insane-bench -- udp-rtt [--quick] [--sizes 64,1024]
//! cargo run --release -p insane-bench -- tcp-echo [--quick] [--connections 1,64]
//! cargo run --release -p insane-bench -- tcp-stream [--quick] [--mib 1024]
//! cargo run --release -p insane-bench -- all [--quick] [--out DIR]
//! ```

mod report;
mod scenarios;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use report::Report;
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
    /// UDP ping-pong round-trip time over 127.0.0.1 (64 B by default):
    /// insane (io_uring, epoll), tokio, std blocking, std busy-poll.
    UdpRtt(scenarios::udp_rtt::Args),
    /// TCP echo, 100 B requests on 1 and 64 connections (monoio's shape):
    /// requests/s and latency of each contestant's 1-core echo server.
    TcpEcho(scenarios::tcp_echo::Args),
    /// One TCP connection streaming 1 GiB in 64 KiB writes: Gbit/s.
    TcpStream(scenarios::tcp_stream::Args),
    /// runtime, udp-rtt, tcp-echo and tcp-stream with their defaults;
    /// writes every scenario's files and `<out>/report.md`.
    All(NetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (reports, common) = match &cli.scenario {
        Scenario::Runtime(args) => (vec![scenarios::runtime::run(args)], &args.common),
        Scenario::UdpRtt(args) => (vec![scenarios::udp_rtt::run(args)], &args.net.common),
        Scenario::TcpEcho(args) => (vec![scenarios::tcp_echo::run(args)], &args.net.common),
        Scenario::TcpStream(args) => (vec![scenarios::tcp_stream::run(args)], &args.net.common),
        Scenario::All(args) => (all(args), &args.common),
    };
    let mut ok = true;
    for report in &reports {
        print!("\n{}", report.to_markdown());
        ok &= write(report, &common.out);
    }
    if matches!(cli.scenario, Scenario::All(_)) {
        ok &= write_combined(&reports, &common.out, common.quick);
    }
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
    use scenarios::{runtime, tcp_echo, tcp_stream, udp_rtt};
    let runtime = runtime::Args {
        common: args.common.clone(),
        pin: false,
        idle: args.idle,
    };
    let udp = udp_rtt::Args {
        net: args.clone(),
        sizes: vec![64],
    };
    let echo = tcp_echo::Args {
        net: args.clone(),
        connections: Vec::new(),
        duration: None,
    };
    let stream = tcp_stream::Args {
        net: args.clone(),
        mib: None,
    };
    vec![
        runtime::run(&runtime),
        udp_rtt::run(&udp),
        tcp_echo::run(&echo),
        tcp_stream::run(&stream),
    ]
}

/// Writes one scenario's files; false (and a message) on failure.
fn write(report: &Report, out: &Path) -> bool {
    match report.write(out) {
        Ok((md, json)) => {
            eprintln!("wrote {} and {}", md.display(), json.display());
            true
        }
        Err(e) => {
            eprintln!("cannot write the report to {}: {e}", out.display());
            false
        }
    }
}

/// Writes `out/report.md`: a title, the command, then every scenario's
/// Markdown in order.
fn write_combined(reports: &[Report], out: &Path, quick: bool) -> bool {
    let mut text = String::from("# insane-bench report\n\n");
    let _ = writeln!(
        text,
        "Command: `cargo run --release -p insane-bench -- all{}`. Absolute numbers depend on \
         the machine; ratios within one run are what compares.\n",
        if quick { " --quick" } else { "" }
    );
    for report in reports {
        text.push_str(&report.to_markdown());
        text.push('\n');
    }
    let path = out.join("report.md");
    match std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            false
        }
    }
}
