//! The `udp-rtt` scenario: UDP ping-pong over 127.0.0.1. The client sends a
//! datagram (64 B, 1 KiB and 16 KiB by default; `--sizes` chooses), the server
//! receives it with `recv_from` and sends it back with `send_to`, and the
//! client times each round trip (HdrHistogram, p50/p90/p99/p99.9).
//!
//! Both ends are the contestant, each on its own thread and runtime: the
//! client on the client CPU, the server on the server CPU (see
//! [`Placement`]). insane: two 1-core runtimes (`insane::net::UdpSocket`,
//! io_uring or epoll driver); tokio: two current-thread runtimes; monoio:
//! two 1-core io_uring runtimes (owned buffers); insane-endpoint: two 1-core
//! runtimes with a QoS `Endpoint` each (`latency = critical, best-effort,
//! resources = poll`: kernel UDP, busy-polled), used as a user would
//! (`buffer`, `extend_from_slice`, `send_to`, `recv`); glommio: two
//! `LocalExecutor`s; std blocking: two threads blocking in `recv_from`; std busy-poll: two
//! threads spinning on a non-blocking `recv_from` (the kernel's floor,
//! without any wake-up).
//!
//! The first 8 bytes carry a sequence number that the client checks in the
//! echo. A zero-length datagram stops the server. Each timed run is a fixed
//! number of round trips, cut short after a time limit. The contestants
//! are measured in alternating rounds ([`crate::rounds`]): per round, one
//! process and one timed run (after the warm-up) per contestant.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use super::net::{
    Contestant, CpuTimes, Ctx, NetArgs, Placement, cdf_points, cells, describe_run,
    each_contestant_in_rounds, finish, glommio_executor, insane_runtime, latency_cdf,
    latency_histogram, monoio_runtime, quantiles, rtt_quantile_rows, run_sync, start_server,
    tokio_runtime,
};
use super::runtime::Idle;
use crate::report::{Report, Unit};
use crate::rounds::median_and_best_rows;

/// Options of the `udp-rtt` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub net: NetArgs,

    /// Datagram sizes in bytes (comma-separated, 8 to 65507), e.g.
    /// `--sizes 64`; default 64 B, 1 KiB and 16 KiB.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = DEFAULT_SIZES,
        value_parser = clap::value_parser!(u32).range(8..=65507)
    )]
    pub sizes: Vec<u32>,
}

/// Datagram sizes measured by default (`--sizes`).
pub const DEFAULT_SIZES: &str = "64,1024,16384";

/// The contestants, in column order.
const CONTESTANTS: [Contestant; 9] = [
    Contestant::InsaneUring,
    Contestant::InsaneUringOwned,
    Contestant::InsaneEpoll,
    Contestant::InsaneEndpoint,
    Contestant::TokioCt,
    Contestant::Monoio,
    Contestant::Glommio,
    Contestant::StdBlocking,
    Contestant::StdBusyPoll,
];

/// A std server or client gives up after this long without a datagram, so
/// that a lost peer does not leave a thread blocked (or spinning) forever.
const STD_IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Counts for one size, derived from [`Args`].
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Params {
    size: usize,
    trips: u64,
    warmup_trips: u64,
    repeats: usize,
    max_run: Duration,
    idle: Idle,
    placement: Placement,
}

/// One timed run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct RttRun {
    /// p50, p90, p99, p99.9 in ns.
    quantiles: [f64; 4],
    /// Round trips per second.
    rate: f64,
    /// CPU time of the whole process (client + server) per round trip, ns.
    cpu_per_trip: f64,
    /// The round-trip time distribution (see [`cdf_points`]).
    cdf: Vec<[f64; 2]>,
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let c = &args.net.common;
    let placement = Placement::new(args.net.no_pin);
    let rounds = c.repeats_or(1, 3);
    let trips: u64 = if c.quick { 5_000 } else { 100_000 };
    let warmup_trips = c.warmup as u64 * if c.quick { 1_000 } else { 2_000 };
    let mut notes = Vec::new();
    let contestants = super::net::available(&args.net, &CONTESTANTS, &mut notes);
    let names: Vec<&str> = contestants.iter().map(|c| c.name()).collect();
    let mut report = Report::new("udp-rtt", &names);
    describe_run(&mut report, &args.net, &placement, rounds, true);
    crate::rounds::describe(&mut report, rounds);
    report.param("round trips per timed run", trips);
    report.param("warm-up round trips", warmup_trips);
    report.param(
        "sizes",
        args.sizes
            .iter()
            .map(|s| format!("{s} B"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    say!(
        "udp-rtt scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );

    for &size in &args.sizes {
        let label = super::net::size_label(size);
        if !c.selected(&label) {
            continue;
        }
        let p = Params {
            size: size as usize,
            trips,
            warmup_trips,
            // One timed run per process, one process per round.
            repeats: 1,
            max_run: Duration::from_secs_f64(if c.quick { 1.5 } else { 10.0 }),
            idle: args.net.idle,
            placement,
        };
        let results: Vec<Result<Vec<RttRun>, String>> = each_contestant_in_rounds(
            &format!("udp-rtt {label}"),
            KEY,
            &contestants,
            placement,
            args.net.limits(),
            rounds,
            &p,
        );
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
            &format!("{label} CPU per round trip (both sides)"),
            Unit::Nanos,
            cells(&results, |r| r.cpu_per_trip),
        );
        report.cdfs.push(latency_cdf(
            &label,
            &contestants,
            &results,
            |r| &r.cdf,
            |r| r.quantiles[0],
        ));
    }

    report.notes.extend(notes);
    report.notes.push(
        "one datagram in flight: the client sends, the server echoes it with recv_from/send_to, \
         the client waits for the echo; both ends run the contestant (insane: two 1-core runtimes, \
         tokio: two current-thread runtimes, std: two threads)."
            .to_owned(),
    );
    report.notes.push(
        "CPU per round trip: process CPU time (getrusage, user + system) over the timed run \
         divided by round trips; std-busy-poll spins on both CPUs by design."
            .to_owned(),
    );
    finish(&mut report);
    report
}

/// The name this scenario's measurement is registered under for child
/// processes (see [`super::child_main`]).
pub const KEY: &str = "udp-rtt";

/// [`measure`] in a child process: parameters and result as JSON.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure)
}

/// Measures one contestant: starts its server, runs its client here.
fn measure(who: Contestant, p: Params) -> Result<Vec<RttRun>, String> {
    match who {
        Contestant::InsaneUring | Contestant::InsaneEpoll => {
            let driver = who.insane_driver().expect("an insane contestant");
            let server = start_server("udp-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let sock = insane::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(sock.local_addr().ctx("local_addr")?);
                    echo_server(&sock, p.size).await
                })
            })?;
            let to = server.addr;
            let runs = insane_runtime(driver, p.idle)?.block_on(async move {
                let sock = insane::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .ctx("bind")?;
                let (mut msg, mut buf) = (vec![0x5a_u8; p.size], vec![0_u8; p.size + 64]);
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    sock.send_to(&msg, to).await?;
                    let (n, _) = sock.recv_from(&mut buf).await?;
                    Ok((n, stamp_of(&buf[..n])))
                })
                .await;
                sock.send_to(&[], to).await.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::InsaneUringOwned => {
            let driver = who.insane_driver().expect("an insane contestant");
            let server = start_server("udp-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let sock = insane::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(sock.local_addr().ctx("local_addr")?);
                    owned_echo_server(&sock, p.size).await
                })
            })?;
            let to = server.addr;
            let runs = insane_runtime(driver, p.idle)?.block_on(async move {
                let sock = insane::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .ctx("bind")?;
                // Both buffers travel through the kernel and come back.
                let (mut msg, mut buf) = (vec![0x5a_u8; p.size], Vec::with_capacity(p.size + 64));
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    let (res, m) = sock.send_to_owned(std::mem::take(&mut msg), to).await;
                    msg = m;
                    res?;
                    buf.clear();
                    let (res, b) = sock.recv_from_owned(std::mem::take(&mut buf)).await;
                    buf = b;
                    let (n, _) = res?;
                    Ok((n, stamp_of(&buf[..n])))
                })
                .await;
                sock.send_to(&[], to).await.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::InsaneEndpoint => {
            let driver = who.insane_driver().expect("an insane contestant");
            let server = start_server("udp-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let ep = critical_endpoint().await?;
                    ready.send(ep.local_addr().ctx("local_addr")?);
                    endpoint_echo_server(&ep).await
                })
            })?;
            let to = server.addr;
            let runs = insane_runtime(driver, p.idle)?.block_on(async move {
                let ep = critical_endpoint().await?;
                let mut msg = vec![0x5a_u8; p.size];
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).map_err(io::Error::other)?;
                    ep.send_to(out, to).await?;
                    let echo = ep.recv().await?;
                    Ok((echo.len(), stamp_of(&echo)))
                })
                .await;
                ep.send_to(ep.buffer().await, to).await.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::TokioCt => {
            let server = start_server("udp-server", p.placement.server, move |ready| {
                tokio_runtime()?.block_on(async move {
                    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(sock.local_addr().ctx("local_addr")?);
                    echo_server(&sock, p.size).await
                })
            })?;
            let to = server.addr;
            let runs = tokio_runtime()?.block_on(async move {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .ctx("bind")?;
                let (mut msg, mut buf) = (vec![0x5a_u8; p.size], vec![0_u8; p.size + 64]);
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    sock.send_to(&msg, to).await?;
                    let (n, _) = sock.recv_from(&mut buf).await?;
                    Ok((n, stamp_of(&buf[..n])))
                })
                .await;
                sock.send_to(&[], to).await.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::Monoio => {
            let server = start_server("udp-server", p.placement.server, move |ready| {
                monoio_runtime()?.block_on(async move {
                    let sock = monoio::net::udp::UdpSocket::bind("127.0.0.1:0").ctx("bind")?;
                    ready.send(sock.local_addr().ctx("local_addr")?);
                    monoio_echo_server(&sock, p.size).await
                })
            })?;
            let to = server.addr;
            let runs = monoio_runtime()?.block_on(async move {
                let sock = monoio::net::udp::UdpSocket::bind("127.0.0.1:0").ctx("bind")?;
                // monoio's I/O is owned-buffer only: both buffers travel
                // through the kernel and come back.
                let (mut msg, mut buf) = (vec![0x5a_u8; p.size], Vec::with_capacity(p.size + 64));
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    let (res, m) = sock.send_to(std::mem::take(&mut msg), to).await;
                    msg = m;
                    res?;
                    buf.clear();
                    let (res, b) = sock.recv_from(std::mem::take(&mut buf)).await;
                    buf = b;
                    let (n, _) = res?;
                    Ok((n, stamp_of(&buf[..n])))
                })
                .await;
                let (res, _) = sock.send_to(Vec::<u8>::new(), to).await;
                res.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::Glommio => {
            let server = start_server("udp-server", p.placement.server, move |ready| {
                glommio_executor()?.run(async move {
                    let mut sock = glommio::net::UdpSocket::bind("127.0.0.1:0").ctx("bind")?;
                    sock.set_buffer_size(p.size + 64);
                    ready.send(sock.local_addr().ctx("local_addr")?);
                    echo_server(&sock, p.size).await
                })
            })?;
            let to = server.addr;
            let runs = glommio_executor()?.run(async move {
                let mut sock = glommio::net::UdpSocket::bind("127.0.0.1:0").ctx("bind")?;
                sock.set_buffer_size(p.size + 64);
                let (mut msg, mut buf) = (vec![0x5a_u8; p.size], vec![0_u8; p.size + 64]);
                let runs = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    sock.send_dgram(&msg, to).await?;
                    let (n, _) = sock.recv_dgram(&mut buf).await?;
                    Ok((n, stamp_of(&buf[..n])))
                })
                .await;
                sock.send_dgram(&[], to).await.ctx("send stop")?;
                runs
            });
            server.join()?;
            runs
        }
        Contestant::StdBlocking | Contestant::StdBusyPoll => {
            let spin = who == Contestant::StdBusyPoll;
            let server = start_server("udp-server", p.placement.server, move |ready| {
                let sock = std_socket(spin)?;
                ready.send(sock.local_addr().ctx("local_addr")?);
                std_echo_server(&sock, p.size, spin)
            })?;
            let to = server.addr;
            let sock = std_socket(spin)?;
            let (mut msg, mut buf) = (vec![0x5a_u8; p.size], vec![0_u8; p.size + 64]);
            let runs = run_sync(rtt_loop(p, async |seq| {
                stamp(&mut msg, seq);
                std_send_to(&sock, &msg, to, spin)?;
                let (n, _) = std_recv_from(&sock, &mut buf, spin)?;
                Ok((n, stamp_of(&buf[..n])))
            }));
            std_send_to(&sock, &[], to, spin).ctx("send stop")?;
            server.join()?;
            runs
        }
    }
}

/// Writes sequence number `seq` into the first 8 bytes of `msg`.
fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number in a received datagram (`u64::MAX` if too short).
fn stamp_of(buf: &[u8]) -> u64 {
    buf.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

/// The client: `p.warmup_trips` untimed round trips through `trip`, then
/// `p.repeats` timed runs of `p.trips` round trips (or `p.max_run`).
/// `trip(seq)` sends a `p.size`-byte datagram stamped with `seq` (see
/// [`stamp`]) and receives the echo, returning its length and stamp; the
/// closure owns its buffers, so owned-buffer paths fit as well.
async fn rtt_loop<F>(p: Params, mut trip: F) -> Result<Vec<RttRun>, String>
where
    F: AsyncFnMut(u64) -> io::Result<(usize, u64)>,
{
    let mut hist = latency_histogram();
    let mut seq = 0_u64;
    let mut runs = Vec::with_capacity(p.repeats);
    for run in 0..=p.repeats {
        let (warmup, count) = (run == 0, if run == 0 { p.warmup_trips } else { p.trips });
        hist.reset();
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let deadline = t0 + p.max_run;
        let mut done = 0_u64;
        while done < count {
            let start = Instant::now();
            let (n, echoed) = trip(seq).await.ctx("round trip")?;
            let ns = start.elapsed().as_nanos() as u64;
            if n != p.size || echoed != seq {
                return Err(format!(
                    "bad echo for datagram {seq}: {n} bytes (expected {}), stamp {echoed}",
                    p.size
                ));
            }
            hist.saturating_record(ns.max(1));
            seq += 1;
            done += 1;
            if done % 1024 == 0 && Instant::now() > deadline {
                break;
            }
        }
        let elapsed = t0.elapsed();
        let cpu = CpuTimes::now().since(&cpu0);
        if !warmup && done > 0 {
            runs.push(RttRun {
                quantiles: quantiles(&hist),
                rate: done as f64 / elapsed.as_secs_f64(),
                cpu_per_trip: cpu.process.as_nanos() as f64 / done as f64,
                cdf: cdf_points(&hist),
            });
        }
    }
    Ok(runs)
}

/// [`echo_server`] with insane's owned-buffer calls: one buffer moves
/// through `recv_from_owned` and `send_to_owned` and back.
async fn owned_echo_server(sock: &insane::net::UdpSocket, size: usize) -> Result<u64, String> {
    let mut buf = Vec::with_capacity(size + 64);
    let mut echoed = 0;
    loop {
        buf.clear();
        let (res, b) = sock.recv_from_owned(buf).await;
        let (n, from) = res.ctx("recv_from_owned")?;
        if n == 0 {
            return Ok(echoed);
        }
        let (res, b) = sock.send_to_owned(b, from).await;
        res.ctx("send_to_owned")?;
        buf = b;
        echoed += 1;
    }
}

/// A QoS endpoint on 127.0.0.1 for the lowest latency (kernel UDP,
/// busy-polled), with the built-in configuration (no `insane.toml`).
async fn critical_endpoint() -> Result<insane::qos::Endpoint, String> {
    let qos = insane::qos::Qos::builder()
        .critical()
        .best_effort()
        .poll()
        .build();
    insane::qos::Endpoint::bind_with_config(
        "127.0.0.1:0",
        qos,
        Default::default(),
        &insane::config::Config::default(),
    )
    .await
    .ctx("bind")
}

/// [`echo_server`] on a QoS endpoint, written as a user writes it: the
/// reply is a fresh send buffer holding a copy of the request.
async fn endpoint_echo_server(ep: &insane::qos::Endpoint) -> Result<u64, String> {
    let mut echoed = 0;
    loop {
        let msg = ep.recv().await.ctx("recv")?;
        if msg.is_empty() {
            return Ok(echoed);
        }
        let mut reply = ep.buffer().await;
        reply.extend_from_slice(&msg).ctx("echo")?;
        let peer = msg.peer();
        drop(msg);
        ep.send_to(reply, peer).await.ctx("send_to")?;
        echoed += 1;
    }
}

/// The async sockets the echo server and client run on.
trait Datagram {
    async fn send_dgram(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
}

impl Datagram for insane::net::UdpSocket {
    async fn send_dgram(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.send_to(buf, to).await
    }
    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf).await
    }
}

impl Datagram for tokio::net::UdpSocket {
    async fn send_dgram(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.send_to(buf, to).await
    }
    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf).await
    }
}

impl Datagram for glommio::net::UdpSocket {
    async fn send_dgram(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        Ok(self.send_to(buf, to).await?)
    }
    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Ok(self.recv_from(buf).await?)
    }
}

/// [`echo_server`] on a monoio socket (owned buffers: one `Vec` moves
/// through `recv_from` and `send_to` and back).
async fn monoio_echo_server(
    sock: &monoio::net::udp::UdpSocket,
    size: usize,
) -> Result<u64, String> {
    let mut buf = Vec::with_capacity(size + 64);
    let mut echoed = 0;
    loop {
        buf.clear();
        let (res, b) = sock.recv_from(buf).await;
        let (n, from) = res.ctx("recv_from")?;
        if n == 0 {
            return Ok(echoed);
        }
        let (res, b) = sock.send_to(b, from).await;
        res.ctx("send_to")?;
        buf = b;
        echoed += 1;
    }
}

/// Echoes every datagram to its sender until a zero-length one arrives;
/// returns how many were echoed.
async fn echo_server<S: Datagram>(sock: &S, size: usize) -> Result<u64, String> {
    let mut buf = vec![0_u8; size + 64];
    let mut echoed = 0;
    loop {
        let (n, from) = sock.recv_dgram(&mut buf).await.ctx("recv_from")?;
        if n == 0 {
            return Ok(echoed);
        }
        sock.send_dgram(&buf[..n], from).await.ctx("send_to")?;
        echoed += 1;
    }
}

/// A std socket on 127.0.0.1, non-blocking when `spin`, otherwise blocking
/// with a read timeout of [`STD_IDLE_LIMIT`].
fn std_socket(spin: bool) -> Result<StdUdpSocket, String> {
    let sock = StdUdpSocket::bind("127.0.0.1:0").ctx("bind")?;
    if spin {
        sock.set_nonblocking(true).ctx("set_nonblocking")?;
    } else {
        sock.set_read_timeout(Some(STD_IDLE_LIMIT))
            .ctx("set_read_timeout")?;
    }
    Ok(sock)
}

/// [`echo_server`] on a std socket.
fn std_echo_server(sock: &StdUdpSocket, size: usize, spin: bool) -> Result<u64, String> {
    let mut buf = vec![0_u8; size + 64];
    let mut echoed = 0;
    loop {
        let (n, from) = std_recv_from(sock, &mut buf, spin).ctx("recv_from")?;
        if n == 0 {
            return Ok(echoed);
        }
        std_send_to(sock, &buf[..n], from, spin).ctx("send_to")?;
        echoed += 1;
    }
}

/// `recv_from`, spinning on `WouldBlock` when `spin` (giving up after
/// [`STD_IDLE_LIMIT`]).
fn std_recv_from(
    sock: &StdUdpSocket,
    buf: &mut [u8],
    spin: bool,
) -> io::Result<(usize, SocketAddr)> {
    if !spin {
        return sock.recv_from(buf);
    }
    let mut since: Option<Instant> = None;
    let mut spins = 0_u32;
    loop {
        match sock.recv_from(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins % 65_536 == 0 {
                    let t = *since.get_or_insert_with(Instant::now);
                    if t.elapsed() > STD_IDLE_LIMIT {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "nothing received for 10 s",
                        ));
                    }
                }
            }
            r => return r,
        }
    }
}

/// `send_to`, retrying on `WouldBlock` when `spin`.
fn std_send_to(sock: &StdUdpSocket, buf: &[u8], to: SocketAddr, spin: bool) -> io::Result<usize> {
    loop {
        match sock.send_to(buf, to) {
            Err(e) if spin && e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            r => return r,
        }
    }
}
