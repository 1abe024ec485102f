//! `insane-bench`: the command-line entry point of insane's benchmark
//! harness. Each subcommand is a scenario (see [`scenarios`]) that measures
//! insane side by side with its baselines in the same process, prints a
//! Markdown table to stdout and writes `<out>/<scenario>.md` and
//! `<out>/<scenario>.json`.
//!
//! ```text
//! cargo run --release -p insane-bench -- runtime [--quick] [--out DIR]
//! ```

mod report;
mod scenarios;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Side-by-side benchmarks of insane against tokio.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (report, common) = match &cli.scenario {
        Scenario::Runtime(args) => (scenarios::runtime::run(args), &args.common),
    };
    print!("\n{}", report.to_markdown());
    match report.write(&common.out) {
        Ok((md, json)) => {
            eprintln!("\nwrote {} and {}", md.display(), json.display());
        }
        Err(e) => {
            eprintln!("cannot write the report to {}: {e}", common.out.display());
            return ExitCode::FAILURE;
        }
    }
    if scenarios::abandoned_threads() {
        // A hung runtime thread would keep the process alive forever.
        std::process::exit(2);
    }
    ExitCode::SUCCESS
}
