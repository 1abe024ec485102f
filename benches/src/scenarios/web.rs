//! The web servers of examples/web measured against their tokio twins:
//! axum rows appended to the `http` scenario (the `axum` example on
//! insane vs the same `Router` under `axum::serve` on tokio; `wrk` over
//! HTTP/1.1 and `h2load` over HTTP/2 with prior knowledge) and the `grpc`
//! scenario (the `tonic` example's `EchoServer` on insane vs the same
//! service under tonic's `transport::Server` on tokio; unary calls by
//! [`super::grpc_load`], tonic's generated client on tokio in a process of
//! its own).
//!
//! Unlike the older rows of `http`, which measure one server after the
//! other, every contestant of a row group runs at once (pinned to the
//! server CPU, idle while another is measured) and they are measured in
//! alternating rounds, so that a change of the machine's speed during the
//! run spreads over all of them; rate rows give the median and, in a
//! `best` row, the best round.

use std::sync::Arc;
use std::time::Duration;

use super::external::{
    Args, H2loadRun, HttpRun, SERVERS, Server, ServerProcess, h2load, key_value, per_op, pin_child,
    start_report, wrk,
};
use super::isolated_try;
use super::net::{Placement, cells};
use crate::report::{Cell, Report, Unit};

/// HTTP/2 streams per connection of the h2load rows.
const H2_STREAMS: u32 = 10;

/// Whether the first round warms each server up (1 s of load, untimed):
/// with `--warmup` above 0, except in quick mode, which keeps the
/// benchmark smoke short.
fn warm_up(c: &super::Common) -> bool {
    c.warmup > 0 && !c.quick
}

/// Each contestant's server, started (or why it could not be).
type Started = Vec<(Server, Result<Arc<ServerProcess>, String>)>;

/// Starts every server of [`SERVERS`]: insane's example `example` (with
/// `extra` arguments) on each driver, and the tokio server `kind`.
fn start_all(example: &str, extra: &[&str], kind: &str, placement: Placement) -> Started {
    SERVERS
        .iter()
        .map(|&server| {
            let proc = ServerProcess::start(example, extra, kind, server, placement.server);
            (server, proc.map(Arc::new))
        })
        .collect()
}

/// A client's run, to which [`rounds`] adds the server's CPU time per
/// operation.
trait ClientRun {
    /// Operations done in a run of `secs` seconds.
    fn operations(&self, secs: u32) -> f64;
    /// Records the server's CPU time per operation, ns.
    fn set_server_cpu(&mut self, per_op_ns: f64);
}

impl ClientRun for HttpRun {
    fn operations(&self, secs: u32) -> f64 {
        self.rate * f64::from(secs)
    }
    fn set_server_cpu(&mut self, per_op_ns: f64) {
        self.server_cpu = per_op_ns;
    }
}

impl ClientRun for H2loadRun {
    fn operations(&self, secs: u32) -> f64 {
        self.rate * f64::from(secs)
    }
    fn set_server_cpu(&mut self, per_op_ns: f64) {
        self.server_cpu = per_op_ns;
    }
}

/// Measures the started servers in alternation: `repeats` rounds, each
/// running the client `run(server, secs)` once per server (after an
/// untimed 1 s run in the first round when `warmup`) and reading the
/// server's CPU time around it; a server that did not start or failed a
/// round gets that error.
fn rounds<R, M>(
    label: &str,
    servers: &Started,
    (repeats, warmup, secs): (usize, bool, u32),
    timeout: Duration,
    run: M,
) -> Vec<Result<Vec<R>, String>>
where
    R: ClientRun + Send + 'static,
    M: Fn(&ServerProcess, u32) -> Result<R, String> + Clone + Send + 'static,
{
    let measure = move |proc: &ServerProcess, warm: bool| {
        if warm {
            run(proc, 1)?;
        }
        let cpu0 = proc.cpu_time();
        let mut result = run(proc, secs)?;
        result.set_server_cpu(per_op(proc.cpu_time(), cpu0, result.operations(secs)));
        Ok(result)
    };
    let mut results: Vec<Result<Vec<R>, String>> = servers
        .iter()
        .map(|(_, proc)| proc.as_ref().map(|_| Vec::new()).map_err(Clone::clone))
        .collect();
    crate::progress::add(results.iter().filter(|r| r.is_ok()).count() * repeats);
    for round in 0..repeats {
        for ((server, proc), result) in servers.iter().zip(&mut results) {
            let (Ok(proc), Ok(_)) = (proc, &result) else {
                continue;
            };
            let (proc, measure) = (Arc::clone(proc), measure.clone());
            let warm = warmup && round == 0;
            let name = format!("{label}/{} #{}", server.name, round + 1);
            match isolated_try(&name, timeout, move || measure(&proc, warm)) {
                Ok(run) => {
                    if let Ok(runs) = result {
                        runs.push(run);
                    }
                }
                Err(e) => *result = Err(e),
            }
        }
    }
    results
}

/// The best sample of each cell (the highest for rates, the lowest
/// otherwise).
fn best_of(unit: &Unit, cells: &[Cell]) -> Vec<Cell> {
    cells
        .iter()
        .map(|c| {
            let best = c.samples.iter().copied().reduce(|a, b| {
                if unit.higher_is_better() {
                    a.max(b)
                } else {
                    a.min(b)
                }
            });
            match (best, &c.error) {
                (Some(v), _) => Cell::from_samples(vec![v]),
                (None, Some(e)) => Cell::failed(e.clone()),
                (None, None) => Cell::default(),
            }
        })
        .collect()
}

/// Adds a rate row (median of the rounds) and, when there was more than
/// one round, its `best round` row.
fn rate_rows(report: &mut Report, name: &str, what: &'static str, cells: Vec<Cell>) {
    let unit = Unit::Rate { what };
    let best = best_of(&unit, &cells);
    let several = cells.iter().any(|c| c.samples.len() > 1);
    report.row(name, unit.clone(), cells);
    if several {
        report.row(&format!("{name}, best round"), unit, best);
    }
}

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
    let servers = start_all("axum", &[], "axum", placement);
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
        let results = rounds(
            &format!("http {label}"),
            &servers,
            schedule,
            timeout,
            move |proc: &ServerProcess, secs| wrk(&url(proc), n, secs, client),
        );
        let rate = in_columns(report, cells(&results, |r| r.rate));
        rate_rows(report, &format!("{label} requests"), "req", rate);
        for (i, q) in [(0, "p50"), (2, "p99")] {
            let latency = in_columns(report, cells(&results, |r| r.quantiles[i]));
            report.row(&format!("{label} latency {q}"), Unit::Nanos, latency);
        }
        let cpu = in_columns(report, cells(&results, |r| r.server_cpu));
        report.row(&format!("{label} server CPU per request"), Unit::Nanos, cpu);
    }
    if h2load_found {
        let label = format!("{largest} conn x {H2_STREAMS} streams axum h2load HTTP/2");
        let results = rounds(
            &format!("http {label}"),
            &servers,
            schedule,
            timeout,
            move |proc: &ServerProcess, secs| {
                h2load(&url(proc), largest, Some(H2_STREAMS), secs, client)
            },
        );
        let rate = in_columns(report, cells(&results, |r| r.rate));
        rate_rows(report, &format!("{label} requests"), "req", rate);
        let mean = in_columns(report, cells(&results, |r| r.mean));
        report.row(&format!("{label} mean latency"), Unit::Nanos, mean);
        let cpu = in_columns(report, cells(&results, |r| r.server_cpu));
        report.row(&format!("{label} server CPU per request"), Unit::Nanos, cpu);
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

/// The URL of `GET /` on `proc`.
fn url(proc: &ServerProcess) -> String {
    format!("http://{}/", proc.addr)
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
    let servers = start_all("tonic", &["--serve"], "grpc", placement);
    for k in in_flight {
        let label = format!("{k} in flight");
        if !c.selected(&label) {
            continue;
        }
        let conns = k.min(4);
        let client = placement.client;
        let results = rounds(
            &format!("grpc {label}"),
            &servers,
            (repeats, warm_up(c), secs),
            timeout,
            move |proc: &ServerProcess, secs| load(proc, conns, k, secs, client),
        );
        rate_rows(
            &mut report,
            &format!("{label} unary calls"),
            "calls",
            cells(&results, |r| r.rate),
        );
        for (i, q) in [(0, "p50"), (1, "p99")] {
            report.row(
                &format!("{label} call latency {q}"),
                Unit::Nanos,
                cells(&results, |r| r.quantiles[i]),
            );
        }
        report.row(
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
    fn the_best_round_is_the_highest_rate_or_the_lowest_duration() {
        let cells = vec![
            Cell::from_samples(vec![3.0, 9.0, 5.0]),
            Cell::failed("did not start"),
            Cell::default(),
        ];
        let rate = best_of(&Unit::Rate { what: "req" }, &cells);
        assert_eq!(rate[0].value, Some(9.0));
        assert_eq!(rate[1].error.as_deref(), Some("did not start"));
        assert_eq!((rate[2].value, rate[2].error.is_none()), (None, true));
        assert_eq!(best_of(&Unit::Nanos, &cells)[0].value, Some(3.0));
    }

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
