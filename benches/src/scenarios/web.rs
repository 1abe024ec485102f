//! The web servers of examples/web measured against their tokio twins:
//! axum rows appended to the `http` scenario (the `axum` example on
//! insane vs the same `Router` under `axum::serve` on tokio; `wrk` over
//! HTTP/1.1 and `h2load` over HTTP/2 with prior knowledge) and the `grpc`
//! scenario (the `tonic` example's `EchoServer` on insane vs the same
//! service under tonic's `transport::Server` on tokio; unary calls by
//! [`super::grpc_load`], tonic's generated client on tokio in a process of
//! its own).
//!
//! As in the other rows of `http`, every contestant of a row group runs at
//! once (pinned to the server CPU, idle while another is measured) and
//! they are measured in alternating rounds ([`client_rounds`]), so that a
//! change of the machine's speed during the run spreads over all of them;
//! rate rows give the median and, in a `, best round` row, the best round.

use std::time::Duration;

use super::external::{
    Args, ClientRun, SERVERS, ServerProcess, client_rounds, h2load, key_value, pin_child,
    start_all, start_report, url, warm_up, wrk,
};
use super::net::{Placement, cells};
use crate::report::{Cell, Report, Unit};
use crate::rounds::median_and_best_rows;

/// HTTP/2 streams per connection of the h2load rows.
const H2_STREAMS: u32 = 10;

/// `cells` (one per [`SERVERS`] entry) in the columns of `report`, whose
/// other systems (monoio) get an empty cell: not measured here.
fn in_columns(report: &Report, cells: Vec<Cell>) -> Vec<Cell> {
    report
        .systems
        .iter()
        .map(|system| {
            SERVERS
                .iter()
                .position(|s| s.name == system)
                .map(|i| cells[i].clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Which of the http scenario's clients are installed.
#[derive(Clone, Copy, Debug)]
pub struct Clients {
    pub wrk: bool,
    pub h2load: bool,
}

/// Appends the axum rows to the `http` report: for each of
/// `connections`, `wrk` against the axum example and its tokio twin; at
/// the largest, `h2load` over HTTP/2 (each when installed).
pub fn axum_rows(
    args: &Args,
    report: &mut Report,
    clients: Clients,
    connections: &[u32],
    secs: u32,
) {
    let c = &args.common;
    let Clients {
        wrk: wrk_found,
        h2load: h2load_found,
    } = clients;
    if !c.selected("axum") || (!wrk_found && !h2load_found) {
        return;
    }
    let schedule = (c.repeats_or(1, 3), warm_up(c), secs);
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    say!("http axum (alternating rounds):");
    let servers = start_all(&SERVERS, "axum", &[], "axum", placement);
    let largest = connections.iter().copied().max().unwrap_or(1);
    // --quick: only the largest connection count.
    let counts: Vec<u32> = if c.quick {
        vec![largest]
    } else {
        connections.to_vec()
    };
    let client = placement.client;
    for n in counts.iter().copied().filter(|_| wrk_found) {
        let label = format!("{n} conn axum wrk");
        let results = client_rounds(
            &format!("http {label}"),
            &servers,
            schedule,
            timeout,
            move |proc: &ServerProcess, secs| wrk(&url(proc), n, secs, client),
        );
        let rate = in_columns(report, cells(&results, |r| r.rate));
        median_and_best_rows(
            report,
            &format!("{label} requests"),
            Unit::Rate { what: "req" },
            rate,
        );
        let p50 = in_columns(report, cells(&results, |r| r.quantiles[0]));
        median_and_best_rows(report, &format!("{label} latency p50"), Unit::Nanos, p50);
        let p99 = in_columns(report, cells(&results, |r| r.quantiles[2]));
        report.row(&format!("{label} latency p99"), Unit::Nanos, p99);
        let cpu = in_columns(report, cells(&results, |r| r.server_cpu));
        let name = format!("{label} server CPU per request");
        median_and_best_rows(report, &name, Unit::Nanos, cpu);
    }
    if h2load_found {
        let label = format!("{largest} conn x {H2_STREAMS} streams axum h2load HTTP/2");
        let results = client_rounds(
            &format!("http {label}"),
            &servers,
            schedule,
            timeout,
            move |proc: &ServerProcess, secs| {
                h2load(&url(proc), largest, Some(H2_STREAMS), secs, client)
            },
        );
        let rate = in_columns(report, cells(&results, |r| r.rate));
        median_and_best_rows(
            report,
            &format!("{label} requests"),
            Unit::Rate { what: "req" },
            rate,
        );
        let mean = in_columns(report, cells(&results, |r| r.mean));
        median_and_best_rows(report, &format!("{label} mean latency"), Unit::Nanos, mean);
        let cpu = in_columns(report, cells(&results, |r| r.server_cpu));
        let name = format!("{label} server CPU per request");
        median_and_best_rows(report, &name, Unit::Nanos, cpu);
    }
    report.param(
        "axum rows",
        format!(
            "examples/web's axum example (insane, --cores 1) vs the same Router under \
             axum::serve on a tokio current-thread runtime; GET /; wrk -t1 -c N -d {secs}s; \
             h2load -t1 -c {largest} -m {H2_STREAMS} -D {secs} (HTTP/2, prior knowledge); \
             contestants measured in alternating rounds, all servers running"
        ),
    );
}

/// One run of the gRPC load client.
#[derive(Clone, Debug)]
struct GrpcRun {
    /// Calls answered.
    calls: f64,
    rate: f64,
    /// p50, p99 in ns.
    quantiles: [f64; 2],
    /// Server CPU time per call, ns.
    server_cpu: f64,
}

impl ClientRun for GrpcRun {
    fn operations(&self, _secs: u32) -> f64 {
        self.calls
    }
    fn set_server_cpu(&mut self, per_op_ns: f64) {
        self.server_cpu = per_op_ns;
    }
}

/// Runs the `grpc` scenario: unary calls against the `tonic` example on
/// each driver and tonic's own server on tokio, alternating rounds.
pub fn grpc(args: &Args) -> Report {
    let c = &args.common;
    let repeats = c.repeats_or(1, 3);
    let (mut report, _) = start_report("grpc", &SERVERS, args, None, repeats);
    let in_flight: Vec<u32> = if !args.connections.is_empty() {
        args.connections.clone()
    } else if c.quick {
        vec![16]
    } else {
        vec![1, 64]
    };
    let secs = args.duration.unwrap_or(if c.quick { 1 } else { 3 }).max(1);
    // This scenario's own description replaces the generic one.
    report.params.retain(|(name, _)| name != "servers");
    report.param(
        "servers",
        "examples/web's tonic example --serve (insane, --cores 1, each driver) vs the same \
         EchoServer under tonic::transport::Server on a tokio current-thread runtime",
    );
    report.param(
        "client",
        format!(
            "insane-bench {} (tonic's generated EchoClient on a tokio current-thread runtime, \
             hyper HTTP/2), K calls in flight over min(K, 4) connections for {secs} s, each \
             call's round trip recorded; contestants measured in alternating rounds, all \
             servers running",
            super::grpc_load::LOAD_COMMAND
        ),
    );
    say!(
        "grpc scenario ({} mode, alternating rounds)",
        if c.quick { "quick" } else { "full" }
    );
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    let servers = start_all(&SERVERS, "tonic", &["--serve"], "grpc", placement);
    for k in in_flight {
        let label = format!("{k} in flight");
        if !c.selected(&label) {
            continue;
        }
        let conns = k.min(4);
        let client = placement.client;
        let results = client_rounds(
            &format!("grpc {label}"),
            &servers,
            (repeats, warm_up(c), secs),
            timeout,
            move |proc: &ServerProcess, secs| load(proc, conns, k, secs, client),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} unary calls"),
            Unit::Rate { what: "calls" },
            cells(&results, |r| r.rate),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} call latency p50"),
            Unit::Nanos,
            cells(&results, |r| r.quantiles[0]),
        );
        report.row(
            &format!("{label} call latency p99"),
            Unit::Nanos,
            cells(&results, |r| r.quantiles[1]),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} server CPU per call"),
            Unit::Nanos,
            cells(&results, |r| r.server_cpu),
        );
    }
    report.notes.push(
        "server CPU per call: the server process's CPU time (/proc/PID/stat utime + stime, \
         10 ms ticks) over a client run divided by the calls of that run."
            .to_owned(),
    );
    report
}

/// Runs the gRPC load client once against `proc`.
fn load(
    proc: &ServerProcess,
    conns: u32,
    in_flight: u32,
    secs: u32,
    cpu: Option<usize>,
) -> Result<GrpcRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(super::grpc_load::LOAD_COMMAND)
        .arg(proc.addr.to_string())
        .arg(conns.to_string())
        .arg(in_flight.to_string())
        .arg(secs.to_string())
        .stdin(std::process::Stdio::null());
    pin_child(&mut cmd, cpu);
    let out = cmd.output().map_err(|e| format!("gRPC load client: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gRPC load client exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (calls, seconds) = (key_value(&text, "calls")?, key_value(&text, "seconds")?);
    Ok(GrpcRun {
        calls,
        rate: calls / seconds.max(1e-9),
        quantiles: [key_value(&text, "p50_ns")?, key_value(&text, "p99_ns")?],
        server_cpu: f64::NAN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_land_in_their_servers_columns_and_others_stay_empty() {
        let report = Report::new(
            "http",
            &["insane-uring", "insane-epoll", "tokio-ct", "monoio"],
        );
        let cells = [1.0, 2.0, 3.0]
            .map(|v| Cell::from_samples(vec![v]))
            .to_vec();
        let placed = in_columns(&report, cells);
        let values: Vec<Option<f64>> = placed.iter().map(|c| c.value).collect();
        assert_eq!(values, [Some(1.0), Some(2.0), Some(3.0), None]);
        assert!(
            placed[3].error.is_none(),
            "monoio is not measured, not failed"
        );
    }
}
