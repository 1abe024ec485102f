//! The `tcp-echo` scenario, in the shape of monoio's echo benchmark: N
//! connections (1, 16 and 64; `--quick`: 1 and 16) each send a request
//! (64 B, 1 KiB and 16 KiB; `--quick`: 64 B and 16 KiB) and wait for its
//! echo, back to back, for a fixed duration; the
//! report gives requests/s over all connections, the p50/p99 request
//! latency, and the server's CPU time per request.
//!
//! Only the server varies: it is the contestant's echo server (insane with
//! a 1-core runtime on io_uring or epoll, tokio current-thread, monoio's
//! 1-core io_uring runtime, a glommio `LocalExecutor`, or std with a thread
//! per connection), running on the server CPU. The client is
//! the same for everyone: one tokio current-thread runtime on the client
//! CPU running one task per connection (a `LocalSet`). With two CPUs the
//! client has one core like the server, so it can cap the request rate; the
//! server CPU per request and the client's CPU utilisation (in the notes)
//! show whether it did. The contestants are measured in alternating rounds
//! ([`crate::rounds`]): per round, one process and one timed window (after
//! the warm-up) per contestant.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::net::{
    Contestant, CpuTimes, Ctx, NetArgs, Placement, cdf_points, cells, describe_run,
    each_contestant_in_rounds, finish, glommio_executor, insane_runtime, latency_cdf,
    latency_histogram, monoio_runtime, quantiles, size_label, start_server, tokio_runtime,
};
use super::runtime::Idle;
use crate::report::{Report, Unit, median};
use crate::rounds::median_and_best_rows;

/// Options of the `tcp-echo` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub net: NetArgs,

    /// Request (and echo) sizes in bytes (comma-separated); default
    /// 64,1024,16384 (--quick: 64,16384).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1048576))]
    pub sizes: Vec<u32>,

    /// Connection counts (comma-separated); default 1,16,64 (--quick: 1,16).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: Vec<u32>,

    /// Seconds of one timed run; default 2 (--quick: 0.5).
    #[arg(long)]
    pub duration: Option<f64>,
}

/// The contestants, in column order.
const CONTESTANTS: [Contestant; 7] = [
    Contestant::InsaneUring,
    Contestant::InsaneUringOwned,
    Contestant::InsaneEpoll,
    Contestant::TokioCt,
    Contestant::Monoio,
    Contestant::Glommio,
    Contestant::StdBlocking,
];

/// The echo servers read into a buffer of this size, or of the request
/// size if that is larger.
const READ_BUFFER: usize = 4096;

/// A std echo thread gives up after this long without data.
const STD_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Settings of one connection count, derived from [`Args`].
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Params {
    /// Request (and echo) size in bytes.
    size: usize,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    idle: Idle,
    placement: Placement,
}

/// One timed run (window).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct EchoRun {
    /// Requests per second, all connections together.
    rate: f64,
    /// p50, p90, p99, p99.9 in ns.
    quantiles: [f64; 4],
    /// CPU time of everything but the client thread, per request (ns).
    server_cpu: f64,
    /// Share of the window the server side was on a CPU.
    server_busy: f64,
    /// Share of the window the client thread was on a CPU.
    client_busy: f64,
    /// The request latency distribution (see [`cdf_points`]).
    cdf: Vec<[f64; 2]>,
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let c = &args.net.common;
    let placement = Placement::new(args.net.no_pin);
    let rounds = c.repeats_or(1, 3);
    let connections: Vec<u32> = if args.connections.is_empty() {
        if c.quick {
            vec![1, 16]
        } else {
            vec![1, 16, 64]
        }
    } else {
        args.connections.clone()
    };
    let sizes: Vec<u32> = if args.sizes.is_empty() {
        if c.quick {
            vec![64, 16384]
        } else {
            vec![64, 1024, 16384]
        }
    } else {
        args.sizes.clone()
    };
    let duration = Duration::from_secs_f64(
        args.duration
            .unwrap_or(if c.quick { 0.5 } else { 2.0 })
            .max(0.1),
    );
    let warmup = Duration::from_secs_f64(if c.quick { 0.2 } else { 0.5 }) * c.warmup as u32;
    let mut notes = Vec::new();
    let contestants = super::net::available(&args.net, &CONTESTANTS, &mut notes);
    let names: Vec<&str> = contestants.iter().map(|c| c.name()).collect();
    let mut report = Report::new("tcp-echo", &names);
    describe_run(&mut report, &args.net, &placement, rounds, false);
    crate::rounds::describe(&mut report, rounds);
    report.param(
        "request (= echo) sizes",
        sizes
            .iter()
            .map(|&s| size_label(s))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.param(
        "connections",
        connections
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.param("timed run", format!("{:.1} s", duration.as_secs_f64()));
    report.param("warm-up", format!("{:.1} s", warmup.as_secs_f64()));
    report.param(
        "client",
        "tokio current-thread runtime on the client CPU, one task per connection, the same \
         for every contestant",
    );
    say!(
        "tcp-echo scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );

    let configs = sizes
        .iter()
        .flat_map(|&size| connections.iter().map(move |&n| (size, n)));
    for (size, n) in configs {
        let label = format!("{} {n} conn", size_label(size));
        if !c.selected(&label) {
            continue;
        }
        let p = Params {
            size: size as usize,
            connections: n as usize,
            warmup,
            duration,
            // One timed window per process, one process per round.
            repeats: 1,
            idle: args.net.idle,
            placement,
        };
        let results: Vec<Result<Vec<EchoRun>, String>> = each_contestant_in_rounds(
            &format!("tcp-echo {label}"),
            KEY,
            &contestants,
            placement,
            args.net.limits(),
            rounds,
            &p,
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} requests"),
            Unit::Rate { what: "req" },
            cells(&results, |r| r.rate),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} latency p50"),
            Unit::Nanos,
            cells(&results, |r| r.quantiles[0]),
        );
        report.row(
            &format!("{label} latency p99"),
            Unit::Nanos,
            cells(&results, |r| r.quantiles[2]),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} server CPU per request"),
            Unit::Nanos,
            cells(&results, |r| r.server_cpu),
        );
        report.cdfs.push(latency_cdf(
            &label,
            &contestants,
            &results,
            |r| &r.cdf,
            |r| r.quantiles[0],
        ));
        let busy: Vec<String> = contestants
            .iter()
            .zip(&results)
            .filter_map(|(who, r)| {
                let runs = r.as_ref().ok()?;
                let server = median(&runs.iter().map(|r| r.server_busy).collect::<Vec<_>>());
                let client = median(&runs.iter().map(|r| r.client_busy).collect::<Vec<_>>());
                Some(format!(
                    "{} server {:.0}% / client {:.0}%",
                    who.name(),
                    100.0 * server,
                    100.0 * client
                ))
            })
            .collect();
        if !busy.is_empty() {
            report.notes.push(format!(
                "{label}: CPU utilisation during the timed runs: {}.",
                busy.join(", ")
            ));
        }
    }

    report.notes.extend(notes);
    report.notes.push(
        "each connection writes a request and reads its echo (same size) before the next one \
         (TCP_NODELAY on both ends); the server reads into a buffer of max(4 KiB, request size) \
         and writes back what it read. \
         insane-uring-owned: read_owned/write_all_owned with one Vec per connection; \
         monoio: its owned-buffer read/write_all, likewise; glommio: its futures-io stream. \
         std-blocking: a thread per connection, all on the server CPU."
            .to_owned(),
    );
    report.notes.push(
        "server CPU per request: process CPU time (getrusage) minus the client thread's, over \
         the timed run, divided by requests."
            .to_owned(),
    );
    finish(&mut report);
    report
}

/// The name this scenario's measurement is registered under for child
/// processes (see [`super::child_main`]).
pub const KEY: &str = "tcp-echo";

/// [`measure`] in a child process: parameters and result as JSON.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure)
}

/// Measures one contestant: starts its echo server, runs the shared client
/// here.
fn measure(who: Contestant, p: Params) -> Result<Vec<EchoRun>, String> {
    let n = p.connections;
    let cap = p.size.max(READ_BUFFER);
    let server = match who {
        Contestant::InsaneUring | Contestant::InsaneEpoll => {
            let driver = who.insane_driver().expect("an insane contestant");
            start_server("echo-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let listener = insane::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let mut tasks = Vec::with_capacity(n);
                    for _ in 0..n {
                        let (s, _) = listener.accept().await.ctx("accept")?;
                        s.set_nodelay(true).ctx("set_nodelay")?;
                        tasks.push(insane::spawn(echo(s, cap)));
                    }
                    let mut bytes = 0;
                    for t in tasks {
                        bytes += t.await.ctx("echo task")??;
                    }
                    Ok(bytes)
                })
            })?
        }
        Contestant::InsaneUringOwned => {
            let driver = who.insane_driver().expect("an insane contestant");
            start_server("echo-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let listener = insane::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let mut tasks = Vec::with_capacity(n);
                    for _ in 0..n {
                        let (s, _) = listener.accept().await.ctx("accept")?;
                        s.set_nodelay(true).ctx("set_nodelay")?;
                        tasks.push(insane::spawn(owned_echo(s, cap)));
                    }
                    let mut bytes = 0;
                    for t in tasks {
                        bytes += t.await.ctx("echo task")??;
                    }
                    Ok(bytes)
                })
            })?
        }
        Contestant::TokioCt => start_server("echo-server", p.placement.server, move |ready| {
            tokio_runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .ctx("bind")?;
                ready.send(listener.local_addr().ctx("local_addr")?);
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    tasks.push(tokio::spawn(echo(s, cap)));
                }
                let mut bytes = 0;
                for t in tasks {
                    bytes += t.await.ctx("echo task")??;
                }
                Ok(bytes)
            })
        })?,
        Contestant::StdBlocking => start_server("echo-server", p.placement.server, move |ready| {
            let listener = StdTcpListener::bind("127.0.0.1:0").ctx("bind")?;
            ready.send(listener.local_addr().ctx("local_addr")?);
            let mut threads = Vec::with_capacity(n);
            for _ in 0..n {
                let (s, _) = listener.accept().ctx("accept")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                s.set_read_timeout(Some(STD_IDLE_LIMIT))
                    .ctx("set_read_timeout")?;
                // Threads inherit the server thread's CPU affinity.
                threads.push(
                    std::thread::Builder::new()
                        .name("echo-conn".to_owned())
                        .spawn(move || std_echo(s, cap))
                        .ctx("spawn echo thread")?,
                );
            }
            let mut bytes = 0;
            for t in threads {
                bytes += t.join().map_err(|_| "echo thread panicked".to_owned())??;
            }
            Ok(bytes)
        })?,
        Contestant::Monoio => start_server("echo-server", p.placement.server, move |ready| {
            monoio_runtime()?.block_on(async move {
                let listener = monoio::net::TcpListener::bind("127.0.0.1:0").ctx("bind")?;
                ready.send(listener.local_addr().ctx("local_addr")?);
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    tasks.push(monoio::spawn(monoio_echo(s, cap)));
                }
                let mut bytes = 0;
                for t in tasks {
                    bytes += t.await?;
                }
                Ok(bytes)
            })
        })?,
        Contestant::Glommio => start_server("echo-server", p.placement.server, move |ready| {
            glommio_executor()?.run(async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").ctx("bind")?;
                ready.send(listener.local_addr().ctx("local_addr")?);
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    tasks.push(glommio::spawn_local(futures_echo(s, cap)));
                }
                let mut bytes = 0;
                for t in tasks {
                    bytes += t.await?;
                }
                Ok(bytes)
            })
        })?,
        Contestant::StdBusyPoll | Contestant::InsaneEndpoint => {
            return Err(format!("{} is not a tcp-echo contestant", who.name()));
        }
    };
    let runs = client(server.addr, p);
    if runs.is_err() {
        // The client may have failed before opening every connection;
        // open (and close) the missing ones so the server's accept loop
        // ends instead of waiting forever.
        for _ in 0..n {
            let _ = StdTcpStream::connect_timeout(&server.addr, Duration::from_secs(1));
        }
    }
    // On a client error the connections are closed by now, so the server
    // finishes too; its error (if any) is the more telling one.
    let served = server.join();
    let runs = match (runs, served) {
        (Ok(runs), Ok(_)) => runs,
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(client), Err(server)) => return Err(format!("{server} (client: {client})")),
    };
    Ok(runs)
}

/// Echoes until EOF; returns the bytes echoed.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, cap: usize) -> Result<u64, String> {
    let mut buf = vec![0_u8; cap];
    let mut bytes = 0;
    loop {
        let n = s.read(&mut buf).await.ctx("read")?;
        if n == 0 {
            return Ok(bytes);
        }
        s.write_all(&buf[..n]).await.ctx("write")?;
        bytes += n as u64;
    }
}

/// [`echo`] with insane's owned-buffer calls: one `cap`-byte buffer moves
/// through `read_owned` and `write_all_owned` and back.
async fn owned_echo(s: insane::net::TcpStream, cap: usize) -> Result<u64, String> {
    let mut buf = Vec::with_capacity(cap);
    let mut bytes = 0;
    loop {
        buf.clear();
        let (res, b) = s.read_owned(buf).await;
        let n = res.ctx("read_owned")?;
        if n == 0 {
            return Ok(bytes);
        }
        let (res, b) = s.write_all_owned(b).await;
        res.ctx("write_all_owned")?;
        buf = b;
        bytes += n as u64;
    }
}

/// [`echo`] over the `futures` I/O traits (glommio's streams).
async fn futures_echo<S>(mut s: S, cap: usize) -> Result<u64, String>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    use futures::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0_u8; cap];
    let mut bytes = 0;
    loop {
        let n = s.read(&mut buf).await.ctx("read")?;
        if n == 0 {
            return Ok(bytes);
        }
        s.write_all(&buf[..n]).await.ctx("write")?;
        bytes += n as u64;
    }
}

/// [`echo`] on a monoio stream (owned buffers: one `cap`-byte `Vec` moves
/// through `read` and `write_all` and back).
async fn monoio_echo(mut s: monoio::net::TcpStream, cap: usize) -> Result<u64, String> {
    use monoio::io::{AsyncReadRent as _, AsyncWriteRentExt as _};
    let mut buf = Vec::with_capacity(cap);
    let mut bytes = 0;
    loop {
        buf.clear();
        let (res, b) = s.read(buf).await;
        let n = res.ctx("read")?;
        if n == 0 {
            return Ok(bytes);
        }
        let (res, b) = s.write_all(b).await;
        res.ctx("write")?;
        buf = b;
        bytes += n as u64;
    }
}

/// [`echo`] with blocking std calls.
fn std_echo(mut s: StdTcpStream, cap: usize) -> Result<u64, String> {
    let mut buf = vec![0_u8; cap];
    let mut bytes = 0;
    loop {
        let n = s.read(&mut buf).ctx("read")?;
        if n == 0 {
            return Ok(bytes);
        }
        s.write_all(&buf[..n]).ctx("write")?;
        bytes += n as u64;
    }
}

/// Per timed window: latency histogram and request count.
type Windows = Rc<RefCell<Vec<(Histogram<u64>, u64)>>>;

/// The shared client: `p.connections` connections to `addr`, one task each
/// on a tokio current-thread runtime (this thread); a warm-up, then
/// `p.repeats` windows of `p.duration`.
fn client(addr: std::net::SocketAddr, p: Params) -> Result<Vec<EchoRun>, String> {
    let rt = tokio_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut streams = Vec::with_capacity(p.connections);
        for _ in 0..p.connections {
            let s = tokio::net::TcpStream::connect(addr).await.ctx("connect")?;
            s.set_nodelay(true).ctx("set_nodelay")?;
            streams.push(s);
        }
        // 0: warm-up, 1..=repeats: timed window, above: stop.
        let phase = Rc::new(Cell::new(0_usize));
        let windows: Windows = Rc::new(RefCell::new(
            (0..p.repeats).map(|_| (latency_histogram(), 0)).collect(),
        ));
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|s| {
                tokio::task::spawn_local(connection(
                    s,
                    p.size,
                    phase.clone(),
                    windows.clone(),
                    p.repeats,
                ))
            })
            .collect();
        tokio::time::sleep(p.warmup).await;
        let mut spans = Vec::with_capacity(p.repeats);
        for w in 1..=p.repeats {
            let cpu0 = CpuTimes::now();
            let t0 = Instant::now();
            phase.set(w);
            tokio::time::sleep(p.duration).await;
            spans.push((t0.elapsed(), CpuTimes::now().since(&cpu0)));
        }
        phase.set(p.repeats + 1);
        let mut first_error = None;
        for t in tasks {
            if let Err(e) = t.await.ctx("client task").and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let windows = windows.borrow();
        Ok(spans
            .iter()
            .zip(windows.iter())
            .map(|((elapsed, cpu), (hist, requests))| {
                let secs = elapsed.as_secs_f64();
                let server = cpu.process.saturating_sub(cpu.thread);
                EchoRun {
                    rate: *requests as f64 / secs,
                    quantiles: quantiles(hist),
                    server_cpu: server.as_nanos() as f64 / (*requests).max(1) as f64,
                    server_busy: server.as_secs_f64() / secs,
                    client_busy: cpu.thread.as_secs_f64() / secs,
                    cdf: cdf_points(hist),
                }
            })
            .collect())
    })
}

/// One client connection: request, wait for the echo, repeat until the
/// phase passes `repeats`; records into the current window.
async fn connection(
    mut s: tokio::net::TcpStream,
    size: usize,
    phase: Rc<Cell<usize>>,
    windows: Windows,
    repeats: usize,
) -> Result<(), String> {
    let msg = vec![0x42_u8; size];
    let mut buf = vec![0_u8; size];
    loop {
        let ph = phase.get();
        if ph > repeats {
            return Ok(());
        }
        let start = Instant::now();
        s.write_all(&msg).await.ctx("write request")?;
        s.read_exact(&mut buf).await.ctx("read echo")?;
        if ph >= 1 {
            let ns = start.elapsed().as_nanos() as u64;
            let mut w = windows.borrow_mut();
            let (hist, count) = &mut w[ph - 1];
            hist.saturating_record(ns.max(1));
            *count += 1;
        }
        if buf != msg {
            return Err("echo differs from the request".to_owned());
        }
    }
}
