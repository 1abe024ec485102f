//! The `xdp-rtt` scenario: UDP ping-pong over a veth pair between two
//! network namespaces (created and removed by the scenario; needs root),
//! 64 B and 1472 B by default, round-trip time p50/p99.
//!
//! Both ends run the contestant, in a child process of their own for each
//! timed run ([`in_own_process`]): its main thread enters namespace A and
//! is the client, pinned to the client CPU; the echo server runs on a
//! second thread that enters namespace B, pinned to the server CPU (see
//! [`Placement`]; the contestants that busy-poll spin on both ends). This
//! process creates the namespaces and the veth pair before each run and
//! removes them after it, so a child that crashed or hung (and was killed)
//! leaves nothing behind.
//!
//! * `insane-af_xdp`: QoS endpoints (`latency=critical, best-effort,
//!   resources=poll`) with an `[xdp]` section: insane's userspace stack on
//!   an AF_XDP socket per side (its own address on each veth), busy-polled.
//! * `insane-uring-busy-poll`: the same QoS without `[xdp]`: kernel UDP on
//!   io_uring with `SO_BUSY_POLL`, the core spinning.
//! * `std-busy-poll`: std UDP sockets, non-blocking, `SO_BUSY_POLL`,
//!   spinning on `recv_from` (the kernel's floor without wake-ups).
//! * `tokio-ct`: tokio current-thread runtimes, `UdpSocket`.
//! * `raw-af_xdp`: the AF_XDP driver alone (`insane_xdp::XdpSocket`): the
//!   client writes a prebuilt frame into a UMEM frame, the server swaps
//!   addresses in place and sends the received frame back; no stack, no
//!   runtime — the floor for `insane-af_xdp`.
//!
//! Each run is a fixed number of round trips after a warm-up; the first 8
//! payload bytes carry a sequence number the client checks.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use insane_testhosts::{TestHosts, enter_netns};

use super::Common;
use super::net::{
    Column, Ctx, Placement, Ready, in_own_process, latency_histogram, quantiles, start_server,
};
use crate::report::{Cell, Report, Unit};

/// Options of the `xdp-rtt` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Datagram sizes in bytes (comma-separated, 8 to 1472).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,1472",
        value_parser = clap::value_parser!(u32).range(8..=1472)
    )]
    pub sizes: Vec<u32>,

    /// Do not pin the client and server threads to CPUs (by default the
    /// client runs on the first allowed CPU and the server on the second,
    /// for every contestant alike).
    #[arg(long)]
    pub no_pin: bool,
}

/// The contestants, in column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    InsaneXdp,
    InsaneUringBusyPoll,
    StdBusyPoll,
    TokioCt,
    RawXdp,
}

const SYSTEMS: [System; 5] = [
    System::InsaneXdp,
    System::InsaneUringBusyPoll,
    System::StdBusyPoll,
    System::TokioCt,
    System::RawXdp,
];

impl Column for System {
    const ALL: &'static [System] = &SYSTEMS;

    fn name(self) -> &'static str {
        match self {
            System::InsaneXdp => "insane-af_xdp",
            System::InsaneUringBusyPoll => "insane-uring-busy-poll",
            System::StdBusyPoll => "std-busy-poll",
            System::TokioCt => "tokio-ct",
            System::RawXdp => "raw-af_xdp",
        }
    }
}

const SERVER_PORT: u16 = 9100;
const CLIENT_PORT: u16 = 9101;
/// A side gives up after this long without a datagram.
const IDLE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Params {
    size: usize,
    warmup: u64,
    trips: u64,
}

/// One end of the veth pair, as the child process needs it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct End {
    /// The namespace of its host.
    pub(super) netns: String,
    /// Interface name.
    name: String,
    pub(super) addr: Ipv4Addr,
    mac: [u8; 6],
}

impl End {
    /// Host `host`'s end of the link of `hosts`.
    pub(super) fn of(hosts: &TestHosts, host: usize) -> End {
        let iface = hosts.iface(host, 0);
        End {
            netns: hosts.netns(host).to_owned(),
            name: iface.name.clone(),
            addr: iface.addr,
            mac: iface.mac,
        }
    }
}

/// What a child process measures: one timed run between `a` (client) and
/// `b` (server), pinned as `placement` says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Job {
    p: Params,
    placement: Placement,
    a: End,
    b: End,
}

/// A child's result: p50 and p99 in ns, and the client endpoint's
/// `explain()` (insane contestants).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Run {
    p50_p99: [f64; 2],
    explain: Option<String>,
}

/// The name this scenario's measurement is registered under for child
/// processes (see [`super::child_main`]).
pub const KEY: &str = "xdp-rtt";

/// [`measure`] in a child process: parameters and result as JSON.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure)
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let c = &args.common;
    let placement = Placement::new(args.no_pin);
    let timeout = Duration::from_secs(c.timeout);
    let names: Vec<&str> = SYSTEMS.iter().map(|s| s.name()).collect();
    let mut report = Report::new("xdp-rtt", &names);
    let repeats = c.repeats_or(1, 3);
    let trips: u64 = if c.quick { 5_000 } else { 50_000 };
    let warmup = c.warmup as u64 * 1_000;
    report.param("round trips per timed run", trips);
    report.param("warm-up round trips", warmup);
    report.param("timed runs (median reported)", repeats);
    report.param(
        "order",
        "interleaved rounds: every contestant once per round",
    );
    say!(
        "xdp-rtt scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    let available = TestHosts::available();
    for &size in &args.sizes {
        let label = format!("{size} B");
        if !c.selected(&label) {
            continue;
        }
        let p = Params {
            size: size as usize,
            warmup,
            trips,
        };
        let mut all: Vec<Result<Vec<[f64; 2]>, String>> = SYSTEMS
            .iter()
            .map(|_| match &available {
                Ok(()) => Ok(Vec::new()),
                Err(why) => Err(format!("no network-namespace test hosts: {why}")),
            })
            .collect();
        // Rounds alternate the contestants, so that each round's runs see
        // the same period of this VM (whose speed changes by up to 3x).
        for _ in 0..repeats {
            for (&system, runs) in SYSTEMS.iter().zip(&mut all) {
                let Ok(done) = runs else { continue };
                let name = format!("xdp-rtt {label} {}", system.name());
                match run_once(&name, system, p, placement, timeout) {
                    Ok(q) => done.push(q),
                    Err(e) => *runs = Err(e),
                }
            }
        }
        let cell = |runs: &Result<Vec<[f64; 2]>, String>, i: usize| match runs {
            Ok(v) if !v.is_empty() => Cell::from_samples(v.iter().map(|q| q[i]).collect()),
            Ok(_) => Cell::failed("not run"),
            Err(e) => Cell::failed(e.clone()),
        };
        let p50 = all.iter().map(|r| cell(r, 0)).collect();
        let p99 = all.iter().map(|r| cell(r, 1)).collect();
        report.row(&format!("{label} RTT p50"), Unit::Nanos, p50);
        report.row(&format!("{label} RTT p99"), Unit::Nanos, p99);
    }
    report.notes.push(format!(
        "UDP ping-pong over a veth pair between two network namespaces (fresh ones for each \
         timed run); client in A, echo server in B, one datagram in flight; each run in its own \
         process, {} (busy-polling contestants spin on both ends).",
        placement.describe()
    ));
    report.notes.push(
        "insane-af_xdp: QoS endpoints over insane's userspace stack on AF_XDP (veth: copy \
         mode; native XDP); raw-af_xdp: the AF_XDP driver alone, addresses swapped in place \
         (no stack, no runtime)."
            .to_owned(),
    );
    super::net::disturbance_notes(&mut report);
    report
}

/// One timed run of `system` in its own process (see [`measure`]), on
/// fresh test hosts ([`on_fresh_pair`]).
fn run_once(
    label: &str,
    system: System,
    p: Params,
    placement: Placement,
    timeout: Duration,
) -> Result<[f64; 2], String> {
    on_fresh_pair(label, |a, b| {
        let job = Job { p, placement, a, b };
        let run: Run = in_own_process(label, KEY, system, placement.client, timeout, &job)?;
        if let Some(explain) = run.explain {
            say!("  {}: {explain}", system.name());
        }
        Ok(run.p50_p99)
    })
}

/// Runs `measure` (which starts the child process of one measurement)
/// with the two ends of a fresh veth pair between two network namespaces:
/// created here before, removed here after, whatever became of the
/// child. Counts the measurement in the progress line.
pub(super) fn on_fresh_pair<T>(
    label: &str,
    measure: impl FnOnce(End, End) -> Result<T, String>,
) -> Result<T, String> {
    crate::progress::add(1);
    let hosts = match TestHosts::pair().ctx("test hosts") {
        Ok(hosts) => hosts,
        Err(e) => {
            say!("  {label:<42} FAILED: {e}");
            crate::progress::done();
            return Err(e);
        }
    };
    let result = measure(End::of(&hosts, 0), End::of(&hosts, 1));
    drop(hosts);
    result
}

/// p50 and p99 of `h` in ns.
fn p50_p99(h: &Histogram<u64>) -> [f64; 2] {
    let q = quantiles(h);
    [q[0], q[2]]
}

fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_be_bytes());
}

fn seq_of(buf: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(buf.get(..8)?.try_into().ok()?))
}

/// One timed run of `system` in this (child) process: the echo server on
/// a thread that enters B's namespace, pinned to the server CPU; the
/// client on this thread (already pinned to the client CPU), after it
/// entered A's namespace (`setns` moves only the calling thread).
fn measure(system: System, job: Job) -> Result<Run, String> {
    let Job { p, placement, a, b } = job;
    let total = p.warmup + p.trips;
    let server = {
        let (a, b) = (a.clone(), b.clone());
        start_server("xdp-server", placement.server, move |ready| {
            enter_netns(&b.netns).ctx("server")?;
            serve(system, &a, &b, p, total, ready)
        })?
    };
    let client = enter_netns(&a.netns)
        .ctx("client")
        .and_then(|()| client(system, &a, &b, p));
    let served = server.join();
    match (client, served) {
        (Ok((p50_p99, explain)), Ok(())) => Ok(Run { p50_p99, explain }),
        (Err(c), Ok(())) => Err(format!("client: {c}")),
        (Ok(_), Err(s)) => Err(s),
        (Err(c), Err(s)) => Err(format!("client: {c}; {s}")),
    }
}

/// The address of insane's stack on `iface`'s link: `last` in its /24.
pub(super) fn stack_ip(iface: &End, last: u8) -> Ipv4Addr {
    let o = iface.addr.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// An `[xdp]` section for `iface` queue 0 with the stack at `addr`.
pub(super) fn xdp_config(iface: &End, addr: Ipv4Addr) -> Result<insane::config::Config, String> {
    insane::config::Config::from_toml_str(
        &format!(
            "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"{addr}/24\"\n",
            iface.name
        ),
        "xdp-rtt",
    )
    .ctx("config")
}

fn critical() -> insane::qos::Qos {
    insane::qos::Qos::builder()
        .critical()
        .best_effort()
        .poll()
        .build()
}

fn insane_rt() -> Result<insane::runtime::Runtime, String> {
    insane::runtime::Runtime::builder()
        .cores(1)
        .pin_cores(false)
        .driver(insane::runtime::Driver::Uring)
        .build()
        .ctx("insane runtime")
}

/// The server (in B): echoes `total` datagrams.
fn serve(
    system: System,
    a: &End,
    b: &End,
    p: Params,
    total: u64,
    ready: Ready,
) -> Result<(), String> {
    let local = SocketAddr::from((b.addr, SERVER_PORT));
    match system {
        System::InsaneXdp | System::InsaneUringBusyPoll => {
            let (addr, config) = if system == System::InsaneXdp {
                let ip = stack_ip(b, 200);
                (ip, xdp_config(b, ip)?)
            } else {
                (b.addr, insane::config::Config::default())
            };
            let rt = insane_rt()?;
            rt.block_on(async move {
                let ep = insane::qos::Endpoint::bind_with_config(
                    SocketAddr::from((addr, SERVER_PORT)),
                    critical(),
                    Default::default(),
                    &config,
                )
                .await
                .ctx("bind")?;
                let want = if system == System::InsaneXdp {
                    insane::qos::policy::TransportKind::XdpUdp
                } else {
                    insane::qos::policy::TransportKind::UringUdpBusyPoll
                };
                if ep.driver() != want {
                    return Err(format!("server got {}", ep.explain()));
                }
                ready.send(SocketAddr::from((addr, SERVER_PORT)));
                for i in 0..total {
                    let Ok(msg) = insane::time::timeout(IDLE_LIMIT, ep.recv()).await else {
                        return Err(format!(
                            "server idle after {i} echoes ({})",
                            ep.transport().diagnostics().unwrap_or_default()
                        ));
                    };
                    let msg = msg.ctx("recv")?;
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).ctx("echo")?;
                    let to = msg.peer();
                    drop(msg);
                    ep.send_to(out, to).await.ctx("send")?;
                }
                Ok(())
            })
        }
        System::StdBusyPoll => {
            let sock = std_socket(local)?;
            ready.send(local);
            let mut buf = vec![0u8; 2048];
            for _ in 0..total {
                let (n, from) = spin_recv(&sock, &mut buf)?;
                sock.send_to(&buf[..n], from).ctx("send")?;
            }
            Ok(())
        }
        System::TokioCt => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ctx("tokio")?;
            rt.block_on(async move {
                let sock = tokio::net::UdpSocket::bind(local).await.ctx("bind")?;
                ready.send(local);
                let mut buf = vec![0u8; 2048];
                for _ in 0..total {
                    let (n, from) = tokio::time::timeout(IDLE_LIMIT, sock.recv_from(&mut buf))
                        .await
                        .ctx("server idle")?
                        .ctx("recv")?;
                    sock.send_to(&buf[..n], from).await.ctx("send")?;
                }
                Ok(())
            })
        }
        System::RawXdp => {
            let _ = (a, p);
            let sock = raw_socket(b, SERVER_PORT)?;
            ready.send(local);
            let mut echoed = 0;
            let mut last = Instant::now();
            while echoed < total {
                sock.drive();
                let Some(rx) = sock.recv() else {
                    if last.elapsed() > IDLE_LIMIT {
                        return Err(format!("server idle after {echoed} echoes"));
                    }
                    continue;
                };
                last = Instant::now();
                let mut tx = rx.into_tx();
                swap_addresses(&mut tx);
                if sock.send(tx).is_err() {
                    return Err("raw AF_XDP: TX ring full".into());
                }
                echoed += 1;
            }
            // Let the last echo leave before the socket closes.
            for _ in 0..1000 {
                sock.drive();
                if sock.tx_in_flight() == 0 {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// The client (in A): `warmup` untimed and `trips` timed round trips;
/// p50 and p99, and the endpoint's `explain()` for insane's contestants.
fn client(
    system: System,
    a: &End,
    b: &End,
    p: Params,
) -> Result<([f64; 2], Option<String>), String> {
    match system {
        System::InsaneXdp | System::InsaneUringBusyPoll => {
            let (local, server, config) = if system == System::InsaneXdp {
                let ip = stack_ip(a, 100);
                (ip, stack_ip(b, 200), xdp_config(a, ip)?)
            } else {
                (a.addr, b.addr, insane::config::Config::default())
            };
            let server = SocketAddr::from((server, SERVER_PORT));
            insane_rt()?.block_on(async move {
                let ep = insane::qos::Endpoint::bind_with_config(
                    SocketAddr::from((local, CLIENT_PORT)),
                    critical(),
                    Default::default(),
                    &config,
                )
                .await
                .ctx("bind")?;
                let explain = ep.explain().to_owned();
                ep.connect(server).await.ctx("connect")?;
                let mut msg = vec![0x5a_u8; p.size];
                let q = rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).ctx("payload")?;
                    ep.send(out).await.ctx("send")?;
                    let Ok(echo) = insane::time::timeout(IDLE_LIMIT, ep.recv()).await else {
                        return Err(format!(
                            "no echo for round trip {seq} ({})",
                            ep.transport().diagnostics().unwrap_or_default()
                        ));
                    };
                    let echo = echo.ctx("recv")?;
                    Ok(seq_of(&echo))
                })
                .await?;
                Ok((q, Some(explain)))
            })
        }
        System::StdBusyPoll => {
            let sock = std_socket(SocketAddr::from((a.addr, CLIENT_PORT)))?;
            let server = SocketAddr::from((b.addr, SERVER_PORT));
            let mut msg = vec![0x5a_u8; p.size];
            let mut buf = vec![0u8; 2048];
            block(rtt_loop(p, async |seq| {
                stamp(&mut msg, seq);
                sock.send_to(&msg, server).ctx("send")?;
                let (n, _) = spin_recv(&sock, &mut buf)?;
                Ok(seq_of(&buf[..n]))
            }))
            .map(|q| (q, None))
        }
        System::TokioCt => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ctx("tokio")?;
            let server = SocketAddr::from((b.addr, SERVER_PORT));
            rt.block_on(async move {
                let sock = tokio::net::UdpSocket::bind((a.addr, CLIENT_PORT))
                    .await
                    .ctx("bind")?;
                let mut msg = vec![0x5a_u8; p.size];
                let mut buf = vec![0u8; 2048];
                rtt_loop(p, async |seq| {
                    stamp(&mut msg, seq);
                    sock.send_to(&msg, server).await.ctx("send")?;
                    let (n, _) = tokio::time::timeout(IDLE_LIMIT, sock.recv_from(&mut buf))
                        .await
                        .ctx("no echo")?
                        .ctx("recv")?;
                    Ok(seq_of(&buf[..n]))
                })
                .await
                .map(|q| (q, None))
            })
        }
        System::RawXdp => {
            let sock = raw_socket(a, CLIENT_PORT)?;
            let mut payload = vec![0x5a_u8; p.size];
            stamp(&mut payload, 0);
            let template = insane::net::stack::testing::frames::udp_frame(
                insane::net::stack::EthernetAddress(a.mac),
                insane::net::stack::EthernetAddress(b.mac),
                SocketAddrV4::new(a.addr, CLIENT_PORT),
                SocketAddrV4::new(b.addr, SERVER_PORT),
                &payload,
            );
            // The UDP checksum covers the sequence number: leave it out
            // (0 = none, valid for UDP over IPv4; nobody verifies here).
            const PAYLOAD: usize = 14 + 20 + 8;
            block(rtt_loop(p, async |seq| {
                let mut tx = sock.tx_frame().ok_or("no free TX frame")?;
                tx.try_extend_from_slice(&template).ctx("frame")?;
                tx[PAYLOAD - 2..PAYLOAD].fill(0);
                tx[PAYLOAD..PAYLOAD + 8].copy_from_slice(&seq.to_be_bytes());
                sock.send(tx).map_err(|_| "TX ring full".to_string())?;
                let start = Instant::now();
                loop {
                    sock.drive();
                    if let Some(rx) = sock.recv() {
                        return Ok(seq_of(rx.get(PAYLOAD..).unwrap_or_default()));
                    }
                    if start.elapsed() > IDLE_LIMIT {
                        return Err("no echo".to_string());
                    }
                }
            }))
            .map(|q| (q, None))
        }
    }
}

/// Runs the warm-up and the timed round trips; `trip(seq)` does one and
/// returns the sequence number of the echo.
async fn rtt_loop<F>(p: Params, mut trip: F) -> Result<[f64; 2], String>
where
    F: AsyncFnMut(u64) -> Result<Option<u64>, String>,
{
    let mut h = latency_histogram();
    for seq in 0..p.warmup + p.trips {
        let t = Instant::now();
        let echo = trip(seq).await?;
        let rtt = t.elapsed();
        if echo != Some(seq) {
            return Err(format!("round trip {seq}: echo carries {echo:?}"));
        }
        if seq >= p.warmup {
            h.saturating_record(rtt.as_nanos() as u64);
        }
    }
    Ok(p50_p99(&h))
}

/// Drives a future that never waits (its awaits complete at once).
fn block<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A non-blocking std UDP socket with `SO_BUSY_POLL` (50 µs).
fn std_socket(addr: SocketAddr) -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind(addr).ctx("bind")?;
    sock.set_nonblocking(true).ctx("nonblocking")?;
    let usecs: libc::c_int = 50;
    // SAFETY: the option value points to a live c_int whose size is passed;
    // the descriptor is open.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&usecs as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("SO_BUSY_POLL: {}", std::io::Error::last_os_error()));
    }
    Ok(sock)
}

/// Spins on a non-blocking `recv_from` until a datagram arrives.
fn spin_recv(sock: &UdpSocket, buf: &mut [u8]) -> Result<(usize, SocketAddr), String> {
    let start = Instant::now();
    loop {
        match sock.recv_from(buf) {
            Ok(r) => return Ok(r),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > IDLE_LIMIT {
                    return Err("idle".into());
                }
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

/// A raw AF_XDP socket on `iface` queue 0 steering `port`, busy-polled.
fn raw_socket(iface: &End, port: u16) -> Result<insane_xdp::XdpSocket, String> {
    insane_xdp::XdpSocket::open(
        insane_xdp::SocketConfig::new(&iface.name, 0)
            .busy_poll(Some(insane_xdp::BusyPoll::default()))
            .port(port),
    )
    .ctx("AF_XDP socket")
}

/// Swaps Ethernet, IPv4 and UDP source and destination in place (the
/// checksums stay valid: their sums do not depend on the order).
fn swap_addresses(f: &mut [u8]) {
    if f.len() < 42 {
        return;
    }
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    for i in 0..2 {
        f.swap(34 + i, 36 + i);
    }
}
