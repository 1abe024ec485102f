//! Scenarios measured by external clients, so that not only insane-bench's
//! own Rust clients measure insane: `http` runs `wrk` and `h2load` (HTTP/1.1,
//! `--h1`: the example speaks no h2c) against `examples/hyper_server`
//! (and, through [`super::web`], against the axum example over HTTP/1.1
//! and HTTP/2),
//! `udp-rtt-c` runs a small C UDP ping-pong client
//! (`benches/c/udp_pingpong.c`, compiled here with the system C compiler)
//! against `examples/echo_udp`, and `tcp-bulk` pushes bytes with `socat`
//! through `examples/echo_tcp` and back.
//!
//! The insane servers are the example binaries, started as child processes
//! with `--bind 127.0.0.1:0 --cores 1` and `INSANE_DRIVER=uring|epoll`; the
//! baseline `tokio-ct` (and `monoio` for http) is the equivalent server
//! built into this binary ([`super::baseline_servers`], `insane-bench __serve KIND`). Every
//! server is pinned to the server CPU; its `listening on ADDR` line gives
//! the address. The client process is pinned to the client CPU. The
//! server's CPU time over a client run (`/proc/PID/stat`, utime + stime)
//! gives its CPU per request. Every contestant's server runs from the
//! start of a row group to its end (idle while another is measured), and
//! the client measures them in alternating rounds ([`server_rounds`], see
//! [`crate::rounds`]). The example binaries are built with cargo
//! when they are missing (a no-op when they are fresh). When a client tool
//! is missing its rows (or the scenario) are skipped and the report says
//! why. Loopback only, bounded in time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::net::{Contestant, Placement, cells, rtt_quantile_rows};
use super::{Common, isolated_try};
use crate::report::{Report, Unit};
use crate::rounds::median_and_best_rows;

/// Options of the external-client scenarios.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Do not pin the client and server processes to CPUs.
    #[arg(long)]
    pub no_pin: bool,

    /// http: wrk connections (comma-separated); default 1,64 (--quick: 1,16).
    /// grpc: calls in flight; default 1,64 (--quick: 16).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: Vec<u32>,

    /// http, grpc: seconds of one client run; default 3 (--quick: 1).
    #[arg(long)]
    pub duration: Option<u32>,
}

/// A server of the external scenarios: insane's example on a driver, or
/// the tokio baseline.
#[derive(Clone, Copy, Debug)]
pub(super) struct Server {
    /// Column name.
    pub(super) name: &'static str,
    /// `INSANE_DRIVER` of the example; `None`: a baseline server of this
    /// binary (`insane-bench __serve`).
    driver: Option<&'static str>,
    /// For a baseline: appended to the scenario's server kind (`""`:
    /// tokio, `"-monoio"`: monoio).
    suffix: &'static str,
}

/// The contestants: insane's example servers on each driver, then tokio.
pub(super) const SERVERS: [Server; 3] = [
    Server {
        name: "insane-uring",
        driver: Some("uring"),
        suffix: "",
    },
    Server {
        name: "insane-epoll",
        driver: Some("epoll"),
        suffix: "",
    },
    Server {
        name: "tokio-ct",
        driver: None,
        suffix: "",
    },
];

/// The http scenario's contestants: [`SERVERS`] and monoio's twin.
const HTTP_SERVERS: [Server; 4] = [
    SERVERS[0],
    SERVERS[1],
    SERVERS[2],
    Server {
        name: "monoio",
        driver: None,
        suffix: "-monoio",
    },
];

/// One wrk run.
#[derive(Clone, Debug)]
pub(super) struct HttpRun {
    pub(super) rate: f64,
    /// p50, p90, p99 in ns (wrk's latency distribution).
    pub(super) quantiles: [f64; 3],
    /// Server CPU time per request, ns.
    pub(super) server_cpu: f64,
}

/// One h2load run.
#[derive(Clone, Debug)]
pub(super) struct H2loadRun {
    pub(super) rate: f64,
    /// Mean request time in ns (h2load gives no percentiles).
    pub(super) mean: f64,
    /// Server CPU time per request, ns.
    pub(super) server_cpu: f64,
}

/// One C client run.
#[derive(Clone, Debug)]
struct UdpRun {
    /// Timed round trips.
    trips: f64,
    rate: f64,
    /// p50, p90, p99, p99.9 in ns.
    quantiles: [f64; 4],
    /// Server CPU time per round trip, ns.
    server_cpu: f64,
}

/// One socat transfer through the echo server.
#[derive(Clone, Debug)]
struct BulkRun {
    /// Payload bits per second, one direction (the same bytes come back).
    bits_per_sec: f64,
    /// Server CPU time per MiB echoed, ns.
    server_cpu_per_mib: f64,
}

/// Common report parameters; `false` plus a note when `tool` (if any) is
/// missing.
pub(super) fn start_report(
    scenario: &str,
    servers: &[Server],
    args: &Args,
    tool: Option<&str>,
    repeats: usize,
) -> (Report, bool) {
    let names: Vec<&str> = servers.iter().map(|d| d.name).collect();
    let mut report = Report::new(scenario, &names);
    report.ratios_against("insane", "tokio-ct");
    report.param("mode", if args.common.quick { "quick" } else { "full" });
    crate::rounds::describe(&mut report, repeats);
    report.param(
        "placement",
        Placement::new(args.no_pin)
            .describe()
            .replace("thread(s)", "process")
            .replace("client thread", "client process"),
    );
    report.param(
        "servers",
        "insane example, --cores 1 (1-core runtime); tokio-ct (and monoio for http): the same \
         server on a tokio current-thread (monoio io_uring) runtime, insane-bench __serve",
    );
    report.notes.extend(args.common.note.iter().cloned());
    let found = tool.is_none_or(|tool| tool_found(tool, scenario, &mut report, "nothing measured"));
    (report, found)
}

/// Whether `tool` is on `PATH`; if not, says so and adds a note (`what`
/// tells what is skipped).
pub(super) fn tool_found(tool: &str, scenario: &str, report: &mut Report, what: &str) -> bool {
    let found = which(tool).is_some();
    if !found {
        let package = match tool {
            "cc" => "gcc",
            "h2load" => "nghttp2-client",
            t => t,
        };
        let why = format!(
            "skipped: `{tool}` is not installed (Debian: apt-get install {package}); {what}."
        );
        say!("{scenario} scenario {why}");
        report.notes.push(why);
    }
    found
}

/// Whether the first round warms each server up (1 s of load, untimed):
/// with `--warmup` above 0, except in quick mode, which keeps the
/// benchmark smoke short.
pub(super) fn warm_up(c: &Common) -> bool {
    c.warmup > 0 && !c.quick
}

/// Each contestant's server, started (or why it could not be).
pub(super) type Started = Vec<(Server, Result<Arc<ServerProcess>, String>)>;

/// Starts every server of `servers` at once, each pinned to the server
/// CPU: insane's example `example` (with `extra` arguments) on its driver,
/// or the baseline server `kind` of this binary.
pub(super) fn start_all(
    servers: &[Server],
    example: &str,
    extra: &[&str],
    kind: &str,
    placement: Placement,
) -> Started {
    servers
        .iter()
        .map(|&server| {
            let proc = ServerProcess::start(example, extra, kind, server, placement.server);
            (server, proc.map(Arc::new))
        })
        .collect()
}

/// Measures the started servers in alternating rounds (see
/// [`crate::rounds`]): `rounds` rounds, each running `measure(server,
/// round)` once per server, on a thread of its own (see
/// [`isolated_try`]). A server that did not start or failed a round gets
/// that error.
pub(super) fn server_rounds<R, M>(
    label: &str,
    servers: &Started,
    rounds: usize,
    timeout: Duration,
    measure: M,
) -> Vec<Result<Vec<R>, String>>
where
    R: Send + 'static,
    M: Fn(&ServerProcess, usize) -> Result<R, String> + Clone + Send + 'static,
{
    say!("{label} ({rounds} alternating round(s)):");
    crate::progress::add(servers.iter().filter(|(_, p)| p.is_ok()).count() * rounds);
    let indexes: Vec<usize> = (0..servers.len()).collect();
    crate::rounds::alternate(&indexes, rounds, |i, round| {
        let (server, proc) = &servers[i];
        let proc = Arc::clone(proc.as_ref().map_err(Clone::clone)?);
        let measure = measure.clone();
        let name = format!("{label}/{} #{}", server.name, round + 1);
        isolated_try(&name, timeout, move || measure(&proc, round))
    })
}

/// A load client's run, to which [`client_rounds`] adds the server's CPU
/// time per operation.
pub(super) trait ClientRun {
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

/// [`server_rounds`] for a load client that runs for a time: each round
/// runs the client `run(server, secs)` once per server (after an untimed
/// 1 s run in the first round when `warmup`) and reads the server's CPU
/// time around it.
pub(super) fn client_rounds<R, M>(
    label: &str,
    servers: &Started,
    (rounds, warmup, secs): (usize, bool, u32),
    timeout: Duration,
    run: M,
) -> Vec<Result<Vec<R>, String>>
where
    R: ClientRun + Send + 'static,
    M: Fn(&ServerProcess, u32) -> Result<R, String> + Clone + Send + 'static,
{
    server_rounds(label, servers, rounds, timeout, move |proc, round| {
        if warmup && round == 0 {
            run(proc, 1)?;
        }
        let cpu0 = proc.cpu_time();
        let mut result = run(proc, secs)?;
        result.set_server_cpu(per_op(proc.cpu_time(), cpu0, result.operations(secs)));
        Ok(result)
    })
}

/// Runs the `http` scenario: wrk and h2load against `examples/hyper_server`
/// and its tokio twin.
pub fn http(args: &Args) -> Report {
    let c = &args.common;
    let repeats = c.repeats_or(1, 3);
    // monoio's twin only where monoio runs (see Contestant::available).
    let mut monoio_skipped = None;
    let servers: Vec<Server> = HTTP_SERVERS
        .into_iter()
        .filter(|s| match (s.name, Contestant::Monoio.available()) {
            ("monoio", Err(why)) => {
                monoio_skipped = Some(why);
                false
            }
            _ => true,
        })
        .collect();
    let (mut report, wrk_found) = start_report("http", &servers, args, Some("wrk"), repeats);
    if let Some(why) = monoio_skipped {
        say!("monoio skipped: {why}");
        report
            .notes
            .push(format!("monoio not measured (skipped): {why}"));
    }
    let h2load_found = tool_found("h2load", "http", &mut report, "no h2load rows");
    let connections: Vec<u32> = if args.connections.is_empty() {
        vec![1, if c.quick { 16 } else { 64 }]
    } else {
        args.connections.clone()
    };
    let secs = args.duration.unwrap_or(if c.quick { 1 } else { 3 }).max(1);
    report.param(
        "clients",
        format!(
            "wrk -t1 -c N -d {secs}s --latency; h2load --h1 -t1 -c N -D {secs} \
             (HTTP/1.1: the servers speak no h2c; --quick: only at the largest N); GET / with \
             keep-alive"
        ),
    );
    report.param(
        "connections",
        connections
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !wrk_found && !h2load_found {
        return report;
    }
    say!(
        "http scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    let schedule = (repeats, warm_up(c), secs);
    let started = start_all(&servers, "hyper_server", &[], "http", placement);
    let client = placement.client;
    for &n in &connections {
        let label = format!("{n} conn");
        if !c.selected(&label) {
            continue;
        }
        // --quick: h2load only at the largest connection count.
        let h2load_rows = h2load_found && (!c.quick || Some(&n) == connections.iter().max());
        if wrk_found {
            let results = client_rounds(
                &format!("http {label} wrk"),
                &started,
                schedule,
                timeout,
                move |proc: &ServerProcess, secs| wrk(&url(proc), n, secs, client),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} wrk requests"),
                Unit::Rate { what: "req" },
                cells(&results, |r| r.rate),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} wrk latency p50"),
                Unit::Nanos,
                cells(&results, |r| r.quantiles[0]),
            );
            report.row(
                &format!("{label} wrk latency p99"),
                Unit::Nanos,
                cells(&results, |r| r.quantiles[2]),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} wrk server CPU per request"),
                Unit::Nanos,
                cells(&results, |r| r.server_cpu),
            );
        }
        if h2load_rows {
            let results = client_rounds(
                &format!("http {label} h2load"),
                &started,
                schedule,
                timeout,
                move |proc: &ServerProcess, secs| h2load(&url(proc), n, None, secs, client),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} h2load requests"),
                Unit::Rate { what: "req" },
                cells(&results, |r| r.rate),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} h2load mean latency"),
                Unit::Nanos,
                cells(&results, |r| r.mean),
            );
            median_and_best_rows(
                &mut report,
                &format!("{label} h2load server CPU per request"),
                Unit::Nanos,
                cells(&results, |r| r.server_cpu),
            );
        }
    }
    drop(started);
    let clients = super::web::Clients {
        wrk: wrk_found,
        h2load: h2load_found,
    };
    super::web::axum_rows(args, &mut report, clients, &connections, secs);
    report.notes.push(
        "server CPU per request: the server process's CPU time (/proc/PID/stat utime + stime, \
         10 ms ticks) over a client run divided by the requests of that run."
            .to_owned(),
    );
    report
}

/// Runs the `udp-rtt-c` scenario: the C ping-pong client against
/// `examples/echo_udp`.
pub fn udp_c(args: &Args) -> Report {
    let c = &args.common;
    let repeats = c.repeats_or(1, 3);
    let (mut report, found) = start_report("udp-rtt-c", &SERVERS, args, Some("cc"), repeats);
    let trips: u64 = if c.quick { 10_000 } else { 100_000 };
    let size = 64;
    report.param(
        "client",
        "benches/c/udp_pingpong.c (cc -O2), one datagram in flight",
    );
    report.param("datagram", format!("{size} B"));
    report.param("round trips per timed run", trips);
    if !found {
        return report;
    }
    say!(
        "udp-rtt-c scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    let client = match compile_client() {
        Ok(p) => p,
        Err(e) => {
            say!("udp-rtt-c: {e}");
            report
                .notes
                .push(format!("skipped: the C client did not compile: {e}"));
            return report;
        }
    };
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    let max_secs = if c.quick { 3 } else { 10 };
    let warmup = c.warmup as u64 * 2_000;
    let started = start_all(&SERVERS, "echo_udp", &[], "echo-udp", placement);
    let results: Vec<Result<Vec<UdpRun>, String>> = server_rounds(
        &format!("udp-rtt-c {size} B"),
        &started,
        repeats,
        timeout,
        move |proc: &ServerProcess, round| {
            // The first round's client run warms the server up first.
            let w = if round == 0 { warmup } else { 0 };
            let cpu0 = proc.cpu_time();
            let mut run = ping_pong(&client, proc.addr, size, w, trips, max_secs, placement)?;
            run.server_cpu = per_op(proc.cpu_time(), cpu0, run.trips + w as f64);
            Ok(run)
        },
    );
    drop(started);
    let label = format!("{size} B");
    rtt_quantile_rows(&mut report, &label, &results, |r| r.quantiles);
    median_and_best_rows(
        &mut report,
        &format!("{label} round trips"),
        Unit::Rate {
            what: "round trips",
        },
        cells(&results, |r| r.rate),
    );
    median_and_best_rows(
        &mut report,
        &format!("{label} server CPU per round trip"),
        Unit::Nanos,
        cells(&results, |r| r.server_cpu),
    );
    report.notes.push(
        "the client is C (blocking send/recv on a connected socket, CLOCK_MONOTONIC per round \
         trip); compare with the udp-rtt scenario, where both ends are the contestant. Server \
         CPU per round trip: the server process's CPU time (/proc/PID/stat) over a client run \
         (warm-up included) divided by its round trips."
            .to_owned(),
    );
    report
}

/// Runs the `tcp-bulk` scenario: `socat` streams zeros through
/// `examples/echo_tcp` (and its tokio twin) and writes the echo to
/// /dev/null; one connection, 64 KiB socat blocks.
pub fn tcp_bulk(args: &Args) -> Report {
    let c = &args.common;
    let repeats = c.repeats_or(3, 5);
    let (mut report, found) = start_report("tcp-bulk", &SERVERS, args, Some("socat"), repeats);
    let mib: u64 = if c.quick { 128 } else { 1024 };
    report.param(
        "client",
        format!(
            "socat -b65536 OPEN:/dev/zero,readbytes={} TCP:ADDR (the echo goes back into \
             /dev/zero), one connection",
            mib << 20
        ),
    );
    report.param("bytes per timed run", format!("{mib} MiB each way"));
    if !found {
        return report;
    }
    say!(
        "tcp-bulk scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    let label = format!("{mib} MiB");
    let warmup = c.warmup > 0;
    let started = start_all(&SERVERS, "echo_tcp", &[], "echo-tcp", placement);
    let results: Vec<Result<Vec<BulkRun>, String>> = server_rounds(
        &format!("tcp-bulk {label}"),
        &started,
        repeats,
        timeout,
        move |proc: &ServerProcess, round| {
            // The first round pushes a quarter of the bytes through first.
            if warmup && round == 0 {
                socat(proc.addr, (mib << 20) / 4, placement.client)?;
            }
            let cpu0 = proc.cpu_time();
            let elapsed = socat(proc.addr, mib << 20, placement.client)?;
            Ok(BulkRun {
                bits_per_sec: (mib << 20) as f64 * 8.0 / elapsed.as_secs_f64(),
                server_cpu_per_mib: per_op(proc.cpu_time(), cpu0, mib as f64),
            })
        },
    );
    drop(started);
    median_and_best_rows(
        &mut report,
        &format!("{label} echo throughput"),
        Unit::BitsPerSec,
        cells(&results, |r| r.bits_per_sec),
    );
    median_and_best_rows(
        &mut report,
        &format!("{label} server CPU per MiB"),
        Unit::Nanos,
        cells(&results, |r| r.server_cpu_per_mib),
    );
    report.notes.push(
        "throughput: bytes sent one way over the time socat ran (start to exit: every byte \
         sent, echoed and read back); server CPU per MiB: the server process's CPU time \
         (/proc/PID/stat) over the run divided by the MiB echoed."
            .to_owned(),
    );
    report
}

/// Runs socat once, pushing `bytes` through the echo server at `to`;
/// returns how long it ran.
fn socat(to: SocketAddr, bytes: u64, cpu: Option<usize>) -> Result<Duration, String> {
    let mut cmd = Command::new("socat");
    cmd.args(["-b65536", "-t", "30"])
        .arg(format!("OPEN:/dev/zero,readbytes={bytes}"))
        .arg(format!("TCP:{to}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    pin_child(&mut cmd, cpu);
    let t0 = std::time::Instant::now();
    let out = cmd.output().map_err(|e| format!("socat: {e}"))?;
    let elapsed = t0.elapsed();
    if !out.status.success() {
        return Err(format!(
            "socat exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(elapsed)
}

/// Runs `h2load` for `secs` seconds with `conns` connections against
/// `url`: HTTP/1.1 (`--h1`) when `h2_streams` is `None`, else HTTP/2 with
/// prior knowledge (h2c) and that many concurrent streams per connection.
pub(super) fn h2load(
    url: &str,
    conns: u32,
    h2_streams: Option<u32>,
    secs: u32,
    cpu: Option<usize>,
) -> Result<H2loadRun, String> {
    let mut cmd = Command::new("h2load");
    match h2_streams {
        None => cmd.arg("--h1"),
        Some(m) => cmd.arg(format!("-m{m}")),
    };
    cmd.arg("-t1")
        .arg(format!("-c{conns}"))
        .arg(format!("-D{secs}"))
        .arg(url)
        .stdin(Stdio::null());
    pin_child(&mut cmd, cpu);
    let out = cmd.output().map_err(|e| format!("h2load: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "h2load exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_h2load(&text)
}

/// Requests/s and the mean request time of h2load's output; an error when
/// a request failed.
fn parse_h2load(text: &str) -> Result<H2loadRun, String> {
    let mut rate = None;
    let mut mean = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in") {
            // "finished in 1.00s, 38703.58 req/s, 4.24MB/s"
            rate = rest
                .split(',')
                .nth(1)
                .and_then(|f| f.trim().strip_suffix("req/s"))
                .and_then(|v| v.trim().parse::<f64>().ok());
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "requests: N total, N started, N done, N succeeded, 0 failed, 0 errored, 0 timeout"
            for f in rest.split(',') {
                let mut w = f.split_whitespace();
                if let (Some(n), Some(what)) = (w.next(), w.next())
                    && matches!(what, "failed" | "errored" | "timeout")
                    && n != "0"
                {
                    return Err(format!("h2load: {}", rest.trim()));
                }
            }
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            // min max mean sd +/- sd
            mean = rest.split_whitespace().nth(2).and_then(wrk_duration);
        }
    }
    match (rate, mean) {
        (Some(rate), Some(mean)) => Ok(H2loadRun {
            rate,
            mean,
            server_cpu: f64::NAN,
        }),
        _ => Err(format!(
            "cannot read h2load's output: {}",
            text.lines().take(3).collect::<Vec<_>>().join(" / ")
        )),
    }
}

/// CPU time per operation in ns between two [`ServerProcess::cpu_time`]
/// readings; NaN when unknown.
pub(super) fn per_op(after: Option<Duration>, before: Option<Duration>, ops: f64) -> f64 {
    match (after, before) {
        (Some(a), Some(b)) if ops > 0.0 => a.saturating_sub(b).as_nanos() as f64 / ops,
        _ => f64::NAN,
    }
}

/// `tool`'s path on `PATH`, if any.
fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The directory of the running binary's profile (`target/release`).
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the binary has no directory".to_owned())
}

/// The package of `examples/web` (the axum and tonic examples).
const WEB_EXAMPLES_PACKAGE: &str = "insane-web-examples";

/// The example binary `name` (the root package's, or `examples/web`'s),
/// built with cargo (same target directory and profile as this binary)
/// when cargo and the sources are here; an existing binary is used when
/// cargo cannot run.
fn example(name: &str) -> Result<PathBuf, String> {
    let dir = profile_dir()?;
    let bin = dir.join("examples").join(name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = root.join("examples").join(format!("{name}.rs"));
    let web_source = root
        .join("examples/web/examples")
        .join(format!("{name}.rs"));
    if (source.exists() || web_source.exists())
        && let Some(target) = dir.parent()
    {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--example", name]);
        if !source.exists() {
            cmd.args(["-p", WEB_EXAMPLES_PACKAGE]);
        }
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if dir.file_name().is_some_and(|f| f == "release") {
            cmd.arg("--release");
        }
        match cmd.output() {
            Ok(out) if !out.status.success() && !bin.exists() => {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(format!(
                    "cargo build --example {name} failed: {}",
                    err.lines().last().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} not found and not buildable", bin.display()))
    }
}

/// Compiles `benches/c/udp_pingpong.c` into the profile directory.
fn compile_client() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/udp_pingpong.c");
    let out = profile_dir()?.join("udp_pingpong");
    let result = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !result.status.success() {
        return Err(format!(
            "cc {}: {}",
            src.display(),
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    Ok(out)
}

/// Restricts a child process to `cpu` before it runs (its threads inherit
/// the mask, so insane's runtime pins its core there).
pub(super) fn pin_child(cmd: &mut Command, cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: the closure runs in the forked child before exec and calls
    // only sched_setaffinity on a stack cpu_set_t, which is
    // async-signal-safe; `cpu` comes from the allowed set, within capacity.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// An example server running as a child process; killed on drop.
pub(super) struct ServerProcess {
    child: Child,
    pub(super) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `server` on 127.0.0.1 with one core, pinned to `cpu`: insane's
    /// example `name` (with `extra` arguments) on the server's driver, or
    /// the tokio server `kind` of this binary ([`super::baseline_servers`]);
    /// waits (at most 30 s) for its `listening on ADDR` line.
    pub(super) fn start(
        name: &str,
        extra: &[&str],
        kind: &str,
        server: Server,
        cpu: Option<usize>,
    ) -> Result<ServerProcess, String> {
        let mut cmd = match server.driver {
            Some(driver) => {
                let mut cmd = Command::new(example(name)?);
                cmd.args(["--bind", "127.0.0.1:0", "--cores", "1"])
                    .args(extra)
                    .env("INSANE_DRIVER", driver);
                cmd
            }
            None => {
                let mut cmd =
                    Command::new(std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?);
                cmd.arg(super::baseline_servers::SERVE_COMMAND)
                    .arg(format!("{kind}{}", server.suffix))
                    .args(["--bind", "127.0.0.1:0"]);
                cmd
            }
        };
        let driver = server.driver.unwrap_or(server.name);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        pin_child(&mut cmd, cpu);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("start {name} ({driver}): {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let addr = line
                    .strip_prefix("listening on ")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                Err(format!(
                    "{name} ({driver}) printed no `listening on` line{}",
                    status.map_or(String::new(), |s| format!(" and exited: {s}"))
                ))
            }
        }
    }
}

impl ServerProcess {
    /// The server's CPU time so far (user + system, all its threads), from
    /// `/proc/PID/stat`; `None` when unreadable.
    pub(super) fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the `(comm)`, which may contain spaces: state is
        // field 3, utime 14 and stime 15 (1-based).
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as f64 } else { 100.0 };
        Some(Duration::from_secs_f64(ticks as f64 / hz))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL of `GET /` on `proc`.
pub(super) fn url(proc: &ServerProcess) -> String {
    format!("http://{}/", proc.addr)
}

/// Runs `wrk` for `secs` seconds with `conns` connections against `url`.
pub(super) fn wrk(url: &str, conns: u32, secs: u32, cpu: Option<usize>) -> Result<HttpRun, String> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "--latency", "--timeout", "2s"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg(url)
        .stdin(Stdio::null());
    pin_child(&mut cmd, cpu);
    let out = cmd.output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_wrk(&text)
}

/// Requests/s and the latency distribution of wrk's `--latency` output.
fn parse_wrk(text: &str) -> Result<HttpRun, String> {
    let mut rate = None;
    let mut q = [None; 3];
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rate = v.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            return Err(format!("wrk: non-2xx responses: {}", rest.trim()));
        } else if let Some(rest) = line.strip_prefix("Socket errors:")
            && rest
                .split(',')
                .any(|f| f.split_whitespace().last() != Some("0"))
        {
            return Err(format!("wrk: socket errors:{rest}"));
        } else {
            let mut f = line.split_whitespace();
            let (Some(p), Some(v), None) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let slot = match p {
                "50%" => 0,
                "90%" => 1,
                "99%" => 2,
                _ => continue,
            };
            q[slot] = wrk_duration(v);
        }
    }
    match (rate, q) {
        (Some(rate), [Some(a), Some(b), Some(c)]) => Ok(HttpRun {
            rate,
            quantiles: [a, b, c],
            server_cpu: f64::NAN,
        }),
        _ => Err(format!(
            "cannot read wrk's output: {}",
            text.lines().take(3).collect::<Vec<_>>().join(" / ")
        )),
    }
}

/// wrk's `12.34us` / `1.2ms` / `1.00s` / `1.0m` in ns.
fn wrk_duration(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some(n * scale)
}

/// Runs the C client once.
fn ping_pong(
    client: &Path,
    to: SocketAddr,
    size: usize,
    warmup: u64,
    trips: u64,
    max_secs: u64,
    placement: Placement,
) -> Result<UdpRun, String> {
    let mut cmd = Command::new(client);
    cmd.arg(to.ip().to_string())
        .arg(to.port().to_string())
        .arg(size.to_string())
        .arg(warmup.to_string())
        .arg(trips.to_string())
        .arg(max_secs.to_string())
        .stdin(Stdio::null());
    pin_child(&mut cmd, placement.client);
    let out = cmd.output().map_err(|e| format!("udp_pingpong: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    parse_ping_pong(&String::from_utf8_lossy(&out.stdout))
}

/// The number `key=NUMBER` of a client's one-line `key=value` output.
pub(super) fn key_value(text: &str, key: &str) -> Result<f64, String> {
    text.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("the client printed no {key}: {}", text.trim()))
}

/// The `key=value` line of the C client.
fn parse_ping_pong(text: &str) -> Result<UdpRun, String> {
    let field = |k: &str| key_value(text, k);
    let (trips, secs) = (field("trips")?, field("seconds")?);
    Ok(UdpRun {
        trips,
        server_cpu: f64::NAN,
        rate: trips / secs.max(1e-9),
        quantiles: [
            field("p50_ns")?,
            field("p90_ns")?,
            field("p99_ns")?,
            field("p999_ns")?,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 1 connections\n  \
            Latency Distribution\n     50%   33.00us\n     75%   36.00us\n     90%   40.00us\n     \
            99%    1.20ms\n  25000 requests in 1.00s, 3.00MB read\nRequests/sec:  24999.50\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.rate, 24999.5);
        assert_eq!(r.quantiles, [33_000.0, 40_000.0, 1_200_000.0]);
        let bad = format!("{text}  Socket errors: connect 0, read 2, write 0, timeout 0\n");
        assert!(parse_wrk(&bad).is_err());
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn h2load_output() {
        let text = "finished in 1.00s, 38703.58 req/s, 4.24MB/s\nrequests: 20000 total, \
            20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout\n\
            time for request:       21us      4.90ms       410us       254us    86.63%\n";
        let r = parse_h2load(text).unwrap();
        assert_eq!(r.rate, 38703.58);
        assert_eq!(r.mean, 410_000.0);
        let bad = text.replace("0 failed", "3 failed");
        assert!(parse_h2load(&bad).is_err());
    }

    #[test]
    fn ping_pong_output() {
        let r = parse_ping_pong(
            "trips=1000 seconds=0.5 p50_ns=10 p90_ns=20 p99_ns=30 p999_ns=40 max_ns=50\n",
        )
        .unwrap();
        assert_eq!(r.rate, 2000.0);
        assert_eq!(r.quantiles, [10.0, 20.0, 30.0, 40.0]);
    }
}
