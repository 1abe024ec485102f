//! The `qos-mix` scenario: insane's QoS endpoints (`insane::qos`) on
//! 127.0.0.1, in two tables.
//!
//! **`qos-mix`: RTT per QoS class.** 32 B ping-pong through an
//! [`Endpoint`] on each side (client and server: two 1-core insane
//! runtimes on the io_uring driver, on two threads placed like `udp-rtt`'s,
//! see [`Placement`]), one column per QoS: `insane-critical`
//! (latency=critical, best-effort, resources=poll: busy-polled UDP),
//! `insane-normal` (normal, best-effort, low: UDP with sleeping waits),
//! `insane-reliable` (normal, reliable, low: length-prefixed TCP), and
//! `tokio-ct` (two current-thread runtimes, `tokio::net::UdpSocket`) as
//! the baseline of the ratio columns. Each message is a fresh `TxBuf` from
//! the endpoint's pool; the server echoes the received `RxBuf`'s payload in
//! a fresh `TxBuf` to `RxBuf::peer()`.
//!
//! **`qos-mix-bulk`: critical latency under a saturating bulk flow on the
//! same core.** The client core runs a bulk producer (1 KiB datagrams, as
//! fast as it can, from a normal best-effort endpoint to a sink socket
//! nobody reads) and a critical ping-pong (32 B, critical+poll endpoint,
//! to an echo server on the other core). `insane-endpoints`: both send
//! directly on their endpoints, which go through the core's built-in
//! transmit scheduler (critical before bulk; the producer yields after
//! every datagram). `insane-app-sched`: the application adds its own
//! [`Scheduler`] on top (critical = `Class::Critical`, bulk = `Class::Bulk
//! { weight: 1 }`, 64-item bound) drained by one transmit task (yielding
//! after every datagram as well). Before endpoints had the built-in
//! scheduler, the first column was plain FIFO (critical p50 ~210 µs under
//! bulk against ~112 µs with a scheduler). Reported: the critical RTT and
//! the bulk datagrams actually sent per second.
//!
//! **`qos-mix-isolation-udp` (kernel UDP), `qos-mix-isolation-af_xdp` and
//! `qos-mix-isolation-dpdk-memif`: latency isolation with the priority
//! features on and off** (1 and 8 bulk flows of 64 B and 1 KiB; see
//! [`super::qos_isolation`]).
//!
//! Every column is measured in its own child process
//! ([`each_contestant_process`]): its main thread is the client, pinned to
//! the client CPU, and the echo server runs on a second thread pinned to
//! the server CPU.
//!
//! The first 8 bytes of a ping carry a sequence number that the client
//! checks in the echo; a 1-byte message stops the server.

use std::cell::Cell as Counter;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use insane::qos::sched::{Bound, Class, Scheduler};
use insane::qos::{Endpoint, Qos, TxBuf};
use insane::runtime::Driver;
use insane::task::{spawn_local, yield_now};

use super::net::{
    Column, Ctx, NetArgs, Placement, QUANTILE_NAMES, cdf_points, cells, describe_run,
    each_contestant_process, finish, insane_runtime, insane_runtime_with, latency_cdf,
    latency_histogram, quantiles, start_server, tokio_runtime,
};
use super::runtime::Idle;
use crate::report::{Report, Unit};

/// Options of the `qos-mix` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub net: NetArgs,
}

/// Ping size in bytes.
pub(super) const SIZE: usize = 32;
/// Bulk datagram size in bytes.
const BULK_SIZE: usize = 1024;
/// Items the bulk flow may queue in the scheduler.
const BULK_BOUND: usize = 64;

/// A column of the per-class table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QosColumn {
    Critical,
    Normal,
    Reliable,
    Tokio,
}

impl QosColumn {
    /// The endpoints' QoS (`None`: tokio).
    fn qos(self) -> Option<Qos> {
        let b = Qos::builder();
        match self {
            QosColumn::Critical => Some(b.critical().best_effort().poll().build()),
            QosColumn::Normal => Some(b.best_effort().low().build()),
            QosColumn::Reliable => Some(b.reliable().low().build()),
            QosColumn::Tokio => None,
        }
    }
}

impl Column for QosColumn {
    const ALL: &'static [QosColumn] = &QOS_COLUMNS;

    fn name(self) -> &'static str {
        match self {
            QosColumn::Critical => "insane-critical",
            QosColumn::Normal => "insane-normal",
            QosColumn::Reliable => "insane-reliable",
            QosColumn::Tokio => "tokio-ct",
        }
    }
}

/// The columns of the per-class table, in order.
const QOS_COLUMNS: [QosColumn; 4] = [
    QosColumn::Critical,
    QosColumn::Normal,
    QosColumn::Reliable,
    QosColumn::Tokio,
];

/// A column of the bulk-interference table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Both flows through an application-level [`Scheduler`] and one
    /// transmit task, on top of the endpoints' built-in one.
    Sched,
    /// Both flows send directly on their endpoints (built-in scheduler).
    Fifo,
}

impl Column for Mode {
    const ALL: &'static [Mode] = &[Mode::Sched, Mode::Fifo];

    fn name(self) -> &'static str {
        match self {
            Mode::Sched => "insane-app-sched",
            Mode::Fifo => "insane-endpoints",
        }
    }
}

/// The QoS of the critical flow.
pub(super) fn critical_qos() -> Qos {
    QosColumn::Critical.qos().expect("an insane column")
}

/// The QoS of the bulk flow.
pub(super) fn bulk_qos() -> Qos {
    QosColumn::Normal.qos().expect("an insane column")
}

/// Counts derived from [`Args`].
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Params {
    pub(super) trips: u64,
    pub(super) warmup_trips: u64,
    pub(super) repeats: usize,
    pub(super) max_run: Duration,
    pub(super) idle: Idle,
    pub(super) placement: Placement,
    /// Start a round trip at most once per this interval (a request
    /// stream, not a saturating ping-pong); `None`: back to back.
    pub(super) pace: Option<Duration>,
}

/// One timed run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct RttRun {
    /// p50, p90, p99, p99.9 in ns.
    pub(super) quantiles: [f64; 4],
    /// Round trips per second.
    rate: f64,
    /// Bulk datagrams sent per second (bulk tables only).
    pub(super) bulk_rate: f64,
    /// The run's distribution (see [`cdf_points`]).
    cdf: Vec<[f64; 2]>,
}

/// A measurement: its timed runs and the client endpoint's `explain()`.
type Measured = (Vec<RttRun>, String);

/// Keeps the columns selected by `--contestant`.
fn selected<C: Column>(args: &NetArgs, all: &[C]) -> Vec<C> {
    all.iter()
        .copied()
        .filter(|c| args.contestants.is_empty() || args.contestants.iter().any(|n| n == c.name()))
        .collect()
}

/// Runs the scenario: the per-class table, then the bulk table.
pub fn run(args: &Args) -> Vec<Report> {
    let c = &args.net.common;
    let placement = Placement::new(args.net.no_pin);
    let repeats = c.repeats_or(1, 3);
    let p = Params {
        trips: if c.quick { 5_000 } else { 50_000 },
        warmup_trips: c.warmup as u64 * if c.quick { 500 } else { 2_000 },
        repeats,
        max_run: Duration::from_secs(if c.quick { 1 } else { 5 }),
        idle: args.net.idle,
        placement,
        pace: None,
    };
    say!(
        "qos-mix scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    let mut reports = Vec::new();

    let columns = selected(&args.net, &QOS_COLUMNS);
    if c.selected("RTT") && !columns.is_empty() {
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        let mut report = Report::new("qos-mix", &names);
        describe_run(&mut report, &args.net, &placement, repeats, true);
        report.param("round trips per timed run", p.trips);
        report.param("warm-up round trips", p.warmup_trips);
        report.param("size", format!("{SIZE} B"));
        let results: Vec<Result<Measured, String>> = each_contestant_process(
            "qos-mix 32 B",
            KEY,
            &columns,
            placement,
            args.net.limits(),
            &p,
        );
        let runs: Vec<Result<Vec<RttRun>, String>> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|(runs, _)| runs.clone())
                    .map_err(Clone::clone)
            })
            .collect();
        for (i, q) in QUANTILE_NAMES.iter().enumerate() {
            report.row(
                &format!("{SIZE} B RTT {q}"),
                Unit::Nanos,
                cells(&runs, |r| r.quantiles[i]),
            );
        }
        report.row(
            &format!("{SIZE} B round trips"),
            Unit::Rate {
                what: "round trips",
            },
            cells(&runs, |r| r.rate),
        );
        report.cdfs.push(latency_cdf(
            &format!("{SIZE} B"),
            &columns,
            &runs,
            |r| &r.cdf,
            |r| r.quantiles[0],
        ));
        for (who, r) in columns.iter().zip(&results) {
            if let Ok((_, explain)) = r {
                report
                    .notes
                    .push(format!("{}: explain(): `{explain}`", who.name()));
            }
        }
        report.notes.push(
            "one message in flight: the client takes a TxBuf from its endpoint, sends it to the \
             server endpoint, and waits for the echo (an RxBuf); the server copies each RxBuf's \
             payload into a fresh TxBuf back to its peer. Both sides use the same QoS; insane: \
             two 1-core io_uring runtimes, tokio: two current-thread runtimes with UdpSocket."
                .to_owned(),
        );
        finish(&mut report);
        reports.push(report);
    }

    let modes = selected(&args.net, &[Mode::Sched, Mode::Fifo]);
    if c.selected("bulk") && !modes.is_empty() {
        let names: Vec<&str> = modes.iter().map(|c| c.name()).collect();
        let mut report = Report::new("qos-mix-bulk", &names);
        describe_run(&mut report, &args.net, &placement, repeats, true);
        report.param("critical round trips per timed run", p.trips);
        report.param("warm-up round trips", p.warmup_trips);
        report.param("critical ping size", format!("{SIZE} B"));
        report.param("bulk datagram size", format!("{BULK_SIZE} B"));
        report.param(
            "bulk queue bound (scheduler)",
            format!("{BULK_BOUND} items"),
        );
        let results: Vec<Result<Measured, String>> = each_contestant_process(
            "qos-mix under bulk",
            BULK_KEY,
            &modes,
            placement,
            args.net.limits(),
            &p,
        );
        let runs: Vec<Result<Vec<RttRun>, String>> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|(runs, _)| runs.clone())
                    .map_err(Clone::clone)
            })
            .collect();
        for (i, q) in QUANTILE_NAMES.iter().enumerate() {
            report.row(
                &format!("critical {SIZE} B RTT {q} under bulk"),
                Unit::Nanos,
                cells(&runs, |r| r.quantiles[i]),
            );
        }
        report.row(
            &format!("bulk {BULK_SIZE} B datagrams sent"),
            Unit::Rate { what: "datagrams" },
            cells(&runs, |r| r.bulk_rate),
        );
        report.row(
            "bulk throughput",
            Unit::BitsPerSec,
            cells(&runs, |r| r.bulk_rate * (BULK_SIZE * 8) as f64),
        );
        report.cdfs.push(latency_cdf(
            "critical under bulk",
            &modes,
            &runs,
            |r| &r.cdf,
            |r| r.quantiles[0],
        ));
        for (who, r) in modes.iter().zip(&results) {
            if let Ok((_, explain)) = r {
                report.notes.push(format!("{}: {explain}", who.name()));
            }
        }
        report.notes.push(format!(
            "one client core runs a bulk producer ({BULK_SIZE} B datagrams from a \
             normal/best-effort/low endpoint to a sink socket nobody reads, as fast as it can) \
             and a critical ping-pong ({SIZE} B, critical/best-effort/poll endpoint) with an echo \
             server on the other core. insane-endpoints: both send directly on their \
             endpoints, which go through the core's built-in transmit scheduler (the producer \
             yields after each datagram). insane-app-sched: both also enqueue into one \
             application-level Scheduler (critical = Class::Critical, bulk = \
             Class::Bulk {{ weight: 1 }}, bound {BULK_BOUND} items) drained by one transmit task \
             (which yields after each datagram). Bulk rate: datagrams handed to the kernel per \
             second (the sink drops what overflows its receive buffer)."
        ));
        finish(&mut report);
        reports.push(report);
    }

    let columns = selected(&args.net, super::qos_isolation::Priority::ALL);
    let rtt = Params {
        trips: if c.quick { 1_000 } else { 10_000 },
        ..p
    };
    for path in super::qos_isolation::Path::ALL {
        if c.selected(path.report_name()) && !columns.is_empty() {
            reports.extend(super::qos_isolation::report(&args.net, rtt, &columns, path));
        }
    }
    reports
}

/// The name the per-class measurement is registered under for child
/// processes (see [`super::child_main`]).
pub const KEY: &str = "qos-mix";
/// The name the bulk-table measurement is registered under.
pub const BULK_KEY: &str = "qos-mix-bulk";

/// [`measure_class`] in a child process: parameters and result as JSON.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure_class)
}

/// [`measure_bulk`] in a child process: parameters and result as JSON.
pub fn bulk_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure_bulk)
}

/// Writes sequence number `seq` into the first 8 bytes of `msg`.
pub(super) fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number in a received message (`u64::MAX` if too short).
pub(super) fn stamp_of(buf: &[u8]) -> u64 {
    buf.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

/// A send buffer of `ep` holding `bytes`.
pub(super) async fn filled(ep: &Endpoint, bytes: &[u8]) -> io::Result<TxBuf> {
    let mut buf = ep.buffer().await;
    buf.extend_from_slice(bytes)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf)
}

/// The client: `p.warmup_trips` untimed round trips through `trip`, then
/// `p.repeats` timed runs of `p.trips` round trips (or `p.max_run`).
/// `bulk` counts datagrams of a concurrent bulk flow, turned into a rate
/// per timed run. With `p.pace`, each round trip starts on its slot of
/// the pace (the wait, untimed, yields to the core's other tasks and
/// reads the clock: insane's timers tick every millisecond).
pub(super) async fn rtt_loop<F>(
    p: Params,
    bulk: Option<&Counter<u64>>,
    mut trip: F,
) -> Result<Vec<RttRun>, String>
where
    F: AsyncFnMut(u64) -> io::Result<(usize, u64)>,
{
    let mut hist = latency_histogram();
    let mut seq = 0_u64;
    let mut runs = Vec::with_capacity(p.repeats);
    for run in 0..=p.repeats {
        let (warmup, count) = (run == 0, if run == 0 { p.warmup_trips } else { p.trips });
        hist.reset();
        let bulk0 = bulk.map_or(0, Counter::get);
        let t0 = Instant::now();
        let deadline = t0 + p.max_run;
        let mut done = 0_u64;
        while done < count {
            if let Some(pace) = p.pace {
                let slot = t0 + pace * done as u32;
                while Instant::now() < slot {
                    yield_now().await;
                }
            }
            let start = Instant::now();
            let (n, echoed) = trip(seq).await.ctx("round trip")?;
            let ns = start.elapsed().as_nanos() as u64;
            if n != SIZE || echoed != seq {
                return Err(format!(
                    "bad echo for message {seq}: {n} bytes (expected {SIZE}), stamp {echoed}"
                ));
            }
            hist.saturating_record(ns.max(1));
            seq += 1;
            done += 1;
            if Instant::now() > deadline {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let bulk_sent = bulk.map_or(0, Counter::get) - bulk0;
        if !warmup && done > 0 {
            runs.push(RttRun {
                quantiles: quantiles(&hist),
                rate: done as f64 / secs,
                bulk_rate: bulk_sent as f64 / secs,
                cdf: cdf_points(&hist),
            });
        }
    }
    Ok(runs)
}

/// Echoes every [`SIZE`]-byte message to its sender until another size
/// arrives; returns how many were echoed.
pub(super) async fn qos_echo(ep: &Endpoint) -> Result<u64, String> {
    let mut echoed = 0;
    loop {
        let msg = ep.recv().await.ctx("recv")?;
        if msg.len() != SIZE {
            return Ok(echoed);
        }
        let buf = filled(ep, &msg).await.ctx("fill")?;
        let peer = msg.peer();
        drop(msg);
        ep.send_to(buf, peer).await.ctx("send_to")?;
        echoed += 1;
    }
}

/// Starts an insane echo server endpoint with `qos` on the server CPU.
fn start_qos_server(p: Params, qos: Qos) -> Result<super::net::Server<u64>, String> {
    start_qos_server_with(p, qos, true)
}

/// [`start_qos_server`] on a runtime with priority on or off.
pub(super) fn start_qos_server_with(
    p: Params,
    qos: Qos,
    priority: bool,
) -> Result<super::net::Server<u64>, String> {
    start_server("qos-server", p.placement.server, move |ready| {
        insane_runtime_with(Driver::Uring, p.idle, priority)?.block_on(async move {
            let ep = Endpoint::bind("127.0.0.1:0", qos).await.ctx("bind")?;
            ready.send(ep.local_addr().ctx("local_addr")?);
            qos_echo(&ep).await
        })
    })
}

/// Measures one column of the per-class table.
fn measure_class(who: QosColumn, p: Params) -> Result<Measured, String> {
    let Some(qos) = who.qos() else {
        return measure_tokio(p);
    };
    let server = start_qos_server(p, qos)?;
    let to = server.addr;
    let result = insane_runtime(Driver::Uring, p.idle)?.block_on(async move {
        let ep = Endpoint::bind("127.0.0.1:0", qos).await.ctx("bind")?;
        let explain = ep.explain().to_owned();
        let mut msg = [0x5a_u8; SIZE];
        let runs = rtt_loop(p, None, async |seq| {
            stamp(&mut msg, seq);
            ep.send_to(filled(&ep, &msg).await?, to).await?;
            let echo = ep.recv().await?;
            Ok((echo.len(), stamp_of(&echo)))
        })
        .await;
        let stop = filled(&ep, &[0]).await.ctx("fill stop")?;
        ep.send_to(stop, to).await.ctx("send stop")?;
        Ok::<_, String>((runs?, explain))
    });
    server.join()?;
    result
}

/// The tokio baseline: UDP ping-pong between two current-thread runtimes.
fn measure_tokio(p: Params) -> Result<Measured, String> {
    let server = start_server("udp-server", p.placement.server, move |ready| {
        tokio_runtime()?.block_on(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .ctx("bind")?;
            ready.send(sock.local_addr().ctx("local_addr")?);
            let mut buf = [0_u8; SIZE + 64];
            let mut echoed = 0_u64;
            loop {
                let (n, from) = sock.recv_from(&mut buf).await.ctx("recv_from")?;
                if n != SIZE {
                    return Ok(echoed);
                }
                sock.send_to(&buf[..n], from).await.ctx("send_to")?;
                echoed += 1;
            }
        })
    })?;
    let to = server.addr;
    let result = tokio_runtime()?.block_on(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .ctx("bind")?;
        let (mut msg, mut buf) = ([0x5a_u8; SIZE], [0_u8; SIZE + 64]);
        let runs = rtt_loop(p, None, async |seq| {
            stamp(&mut msg, seq);
            sock.send_to(&msg, to).await?;
            let (n, _) = sock.recv_from(&mut buf).await?;
            Ok((n, stamp_of(&buf[..n])))
        })
        .await;
        sock.send_to(&[0], to).await.ctx("send stop")?;
        Ok::<_, String>((runs?, "tokio::net::UdpSocket".to_owned()))
    });
    server.join()?;
    result
}

/// Measures one column of the bulk table.
fn measure_bulk(mode: Mode, p: Params) -> Result<Measured, String> {
    let server = start_qos_server(p, critical_qos())?;
    let echo = server.addr;
    // Never read: the kernel drops what overflows its receive buffer.
    let sink_sock = StdUdpSocket::bind("127.0.0.1:0").ctx("bind sink")?;
    let sink = sink_sock.local_addr().ctx("sink local_addr")?;
    let result = insane_runtime(Driver::Uring, p.idle)?.block_on(async move {
        let crit = Rc::new(
            Endpoint::bind("127.0.0.1:0", critical_qos())
                .await
                .ctx("bind critical")?,
        );
        let bulk = Rc::new(
            Endpoint::bind("127.0.0.1:0", bulk_qos())
                .await
                .ctx("bind bulk")?,
        );
        let explain = format!("critical: `{}`; bulk: `{}`", crit.explain(), bulk.explain());
        let sent = Rc::new(Counter::new(0_u64));
        let stop = Rc::new(Counter::new(false));
        let mut msg = [0x5a_u8; SIZE];
        let runs = match mode {
            Mode::Fifo => {
                let producer = spawn_local({
                    let (bulk, sent, stop) = (bulk.clone(), sent.clone(), stop.clone());
                    async move {
                        let payload = [0xb0_u8; BULK_SIZE];
                        while !stop.get() {
                            let buf = filled(&bulk, &payload).await?;
                            bulk.send_to(buf, sink).await?;
                            sent.set(sent.get() + 1);
                            yield_now().await;
                        }
                        io::Result::Ok(())
                    }
                });
                let runs = rtt_loop(p, Some(&sent), async |seq| {
                    stamp(&mut msg, seq);
                    crit.send_to(filled(&crit, &msg).await?, echo).await?;
                    let r = crit.recv().await?;
                    Ok((r.len(), stamp_of(&r)))
                })
                .await;
                stop.set(true);
                producer.await.ctx("bulk producer")?.ctx("bulk producer")?;
                runs
            }
            Mode::Sched => {
                let sched = Rc::new(Scheduler::<TxBuf>::builder().build_with_len(TxBuf::len));
                let crit_flow = sched.register(Class::Critical, Bound::items(4));
                let bulk_flow = sched.register(Class::Bulk { weight: 1 }, Bound::items(BULK_BOUND));
                let crit_id = crit_flow.id();
                let transmit = spawn_local(transmit(
                    sched.clone(),
                    crit_id,
                    (crit.clone(), echo),
                    (bulk.clone(), sink),
                    sent.clone(),
                ));
                let producer = spawn_local({
                    let (bulk, stop) = (bulk.clone(), stop.clone());
                    async move {
                        let payload = [0xb0_u8; BULK_SIZE];
                        while !stop.get() {
                            let buf = filled(&bulk, &payload).await?;
                            bulk_flow.send(buf).await?;
                        }
                        io::Result::Ok(())
                    }
                });
                let runs = rtt_loop(p, Some(&sent), async |seq| {
                    stamp(&mut msg, seq);
                    crit_flow.send(filled(&crit, &msg).await?).await?;
                    let r = crit.recv().await?;
                    Ok((r.len(), stamp_of(&r)))
                })
                .await;
                stop.set(true);
                // The producer may wait for room, which only the transmit
                // task makes: stop it first, then the transmit task.
                producer.await.ctx("bulk producer")?.ctx("bulk producer")?;
                transmit.abort();
                let _ = transmit.await;
                runs
            }
        };
        let stop_msg = filled(&crit, &[0]).await.ctx("fill stop")?;
        crit.send_to(stop_msg, echo).await.ctx("send stop")?;
        Ok::<_, String>((runs?, explain))
    });
    drop(sink_sock);
    server.join()?;
    result
}

/// The scheduled transmit path: dequeues from `sched` as long as it lives
/// and sends each item on the critical endpoint (flow `crit_id`) or the
/// bulk one, counting bulk datagrams in `sent`.
async fn transmit(
    sched: Rc<Scheduler<TxBuf>>,
    crit_id: insane::qos::sched::FlowId,
    (crit, echo): (Rc<Endpoint>, SocketAddr),
    (bulk, sink): (Rc<Endpoint>, SocketAddr),
    sent: Rc<Counter<u64>>,
) -> io::Result<()> {
    loop {
        sched.ready().await;
        let Some((id, buf)) = sched.dequeue() else {
            continue;
        };
        if id == crit_id {
            crit.send_to(buf, echo).await?;
        } else {
            bulk.send_to(buf, sink).await?;
            sent.set(sent.get() + 1);
        }
        yield_now().await;
    }
}
