//! The `reliable` scenario: insane's reliable datagrams against kernel
//! TCP and against best effort on the same paths, between two network
//! namespaces joined through a bridge namespace (created and removed by
//! the scenario; needs root), where nftables drops 1 % of the UDP and TCP
//! frames for the lossy rows ([`TestHosts::drop_frames`]).
//!
//! Contestants (all but memif over the same veth pairs and bridge):
//! * `insane-reliable-dpdk-memif` and `insane-best-effort-dpdk-memif`:
//!   reliable datagrams (`DpdkReliable`) and best effort (`DpdkUdp`) over
//!   insane's userspace stack on DPDK `net_memif` between two processes
//!   (feature `dpdk`; no bridge, so no loss rows).
//! * `insane-reliable-af_xdp`: QoS endpoints `latency=critical, reliable,
//!   resources=poll` with an `[xdp]` section: reliable datagrams over
//!   insane's userspace stack on AF_XDP (`XdpReliable`).
//! * `insane-best-effort-af_xdp`: the same path best-effort (`XdpUdp`):
//!   the cost of reliability.
//! * `insane-reliable-udp`: reliable datagrams over io_uring busy-poll UDP
//!   (`UdpReliable`, `TransportConfig::prefer`).
//! * `insane-best-effort-udp`: io_uring busy-poll UDP (`UringUdpBusyPoll`).
//! * `insane-io_uring-tcp`: the QoS endpoint the policy gives critical
//!   reliable flows without `[xdp]` (`UringTcp`, kernel TCP).
//! * `tokio-tcp`: tokio current-thread runtimes, `TcpStream` with a 4-byte
//!   length prefix per message, `TCP_NODELAY`.
//!
//! Rows: 32 B round-trip time p50/p99 (one message in flight); 1 MiB
//! message throughput (a window of messages in flight, the receiver
//! answers the last one); the same throughput with 1 % loss; and the
//! round trips of a 32 B ping-pong with 1 % loss that lost a frame: a
//! round trip counts as one when it took longer than [`LOSS_THRESHOLD`]
//! (no loss-free round trip on this path comes near it; a lost frame
//! costs at least the protocol's 300 µs minimum RTO, or TCP's 200 ms),
//! their p50 and p99 are the time to recover one lost frame, plus the
//! round trip. Best effort has no 1 MiB messages and no loss recovery
//! (`-` cells). Each round measures every contestant once, in rotating
//! order, on fresh namespaces; the median over rounds is reported.
//! `INSANE_BENCH_RELIABLE_DIAG=1` prints the server's and the client's
//! transport diagnostics (protocol and device counters) after each
//! throughput run.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use insane_testhosts::{BRIDGE, TestHosts, enter_netns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Common;
use super::net::{Ctx, Placement, Ready, latency_histogram, pin_current_thread, start_server};
use crate::report::{Cell, Report, Unit};

/// Options of the `reliable` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Do not pin the client and server threads to CPUs (by default the
    /// client runs on the first allowed CPU and the server on the second).
    #[arg(long)]
    pub no_pin: bool,
}

/// The contestants, in column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    ReliableDpdk,
    BestEffortDpdk,
    ReliableXdp,
    BestEffortXdp,
    ReliableUdp,
    BestEffortUdp,
    UringTcp,
    TokioTcp,
}

const SYSTEMS: [System; 8] = [
    System::ReliableDpdk,
    System::BestEffortDpdk,
    System::ReliableXdp,
    System::BestEffortXdp,
    System::ReliableUdp,
    System::BestEffortUdp,
    System::UringTcp,
    System::TokioTcp,
];

impl System {
    fn name(self) -> &'static str {
        match self {
            System::ReliableDpdk => "insane-reliable-dpdk-memif",
            System::BestEffortDpdk => "insane-best-effort-dpdk-memif",
            System::ReliableXdp => "insane-reliable-af_xdp",
            System::BestEffortXdp => "insane-best-effort-af_xdp",
            System::ReliableUdp => "insane-reliable-udp",
            System::BestEffortUdp => "insane-best-effort-udp",
            System::UringTcp => "insane-io_uring-tcp",
            System::TokioTcp => "tokio-tcp",
        }
    }

    /// Whether it delivers every message (and so carries 1 MiB messages
    /// and survives loss).
    fn reliable(self) -> bool {
        !matches!(
            self,
            System::BestEffortDpdk | System::BestEffortXdp | System::BestEffortUdp
        )
    }

    /// Whether it runs over the userspace stack on DPDK memif (two
    /// processes, no bridge: no loss rows).
    fn dpdk(self) -> bool {
        matches!(self, System::ReliableDpdk | System::BestEffortDpdk)
    }

    fn from_name(name: &str) -> Option<System> {
        SYSTEMS.into_iter().find(|s| s.name() == name)
    }

    /// Whether it runs over the userspace stack on AF_XDP.
    fn xdp(self) -> bool {
        matches!(self, System::ReliableXdp | System::BestEffortXdp)
    }

    /// The transport the policy must choose for it (insane contestants).
    fn kind(self) -> Option<insane::qos::policy::TransportKind> {
        use insane::qos::policy::TransportKind as K;
        match self {
            System::ReliableDpdk => Some(K::DpdkReliable),
            System::BestEffortDpdk => Some(K::DpdkUdp),
            System::ReliableXdp => Some(K::XdpReliable),
            System::BestEffortXdp => Some(K::XdpUdp),
            System::ReliableUdp => Some(K::UdpReliable),
            System::BestEffortUdp => Some(K::UringUdpBusyPoll),
            System::UringTcp => Some(K::UringTcp),
            System::TokioTcp => None,
        }
    }
}

const PORT: u16 = 9200;
const SMALL: usize = 32;
const MIB: usize = 1 << 20;
/// A side gives up after this long without a message.
const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// A round trip of the lossy ping-pong that took longer than this lost a
/// frame (loss-free round trips on these veths take 10–100 µs; the
/// reliable protocol's minimum RTO is 300 µs, TCP's 200 ms).
const LOSS_THRESHOLD: Duration = Duration::from_micros(250);

/// How long a bulk transfer of `messages` MiB may take before its
/// answer counts as lost: 1 s per MiB (8 Mbit/s, far below any path
/// here, even on a loaded machine) plus the idle limit.
fn bulk_limit(messages: u64) -> Duration {
    IDLE_LIMIT + Duration::from_secs(messages)
}

/// What one exchange does.
#[derive(Clone, Copy, Debug)]
enum Job {
    /// `warmup` untimed, then `trips` timed round trips of `SMALL` bytes.
    Rtt { warmup: u64, trips: u64 },
    /// `messages` of 1 MiB, as fast as the flow allows; the receiver
    /// answers the last.
    Bulk { messages: u64 },
}

/// The counts of one round.
#[derive(Clone, Copy, Debug)]
struct Counts {
    trips: u64,
    warmup: u64,
    bulk: u64,
    lossy_trips: u64,
}

/// One contestant's results in one round.
#[derive(Clone, Debug, Default)]
struct Round {
    rtt: Option<[f64; 2]>,
    bulk_bps: Option<f64>,
    lossy_bulk_bps: Option<f64>,
    /// p50, p99 of the round trips that lost a frame, and how many did.
    recovery: Option<([f64; 2], u64)>,
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let c = &args.common;
    let placement = Placement::new(args.no_pin);
    let names: Vec<&str> = SYSTEMS.iter().map(|s| s.name()).collect();
    let mut report = Report::new("reliable", &names);
    // The ratios: reliability's cost on each bypass path, and
    // reliable datagrams against kernel TCP (io_uring endpoint).
    let at = |s: System| SYSTEMS.iter().position(|&x| x == s).expect("a contestant");
    report.ratios = vec![
        (at(System::ReliableDpdk), at(System::BestEffortDpdk)),
        (at(System::ReliableXdp), at(System::BestEffortXdp)),
        (at(System::ReliableXdp), at(System::UringTcp)),
        (at(System::ReliableUdp), at(System::UringTcp)),
    ];
    let repeats = c.repeats_or(1, 3);
    let counts = if c.quick {
        Counts {
            trips: 1_000,
            warmup: 100,
            bulk: 8,
            lossy_trips: 200,
        }
    } else {
        Counts {
            trips: 20_000,
            warmup: 1_000 * c.warmup as u64,
            bulk: 64,
            lossy_trips: 2_000,
        }
    };
    report.param("round trips per run (32 B)", counts.trips);
    report.param("1 MiB messages per throughput run", counts.bulk);
    report.param("round trips of the lossy ping-pong", counts.lossy_trips);
    crate::rounds::describe(&mut report, repeats);
    say!(
        "reliable scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );
    // One isolated run holds four measurements (RTT, throughput, both
    // with loss): `--timeout` applies to each.
    let timeout = Duration::from_secs(c.timeout * 4);
    let available = TestHosts::available();
    // Contestants that cannot run here get their reason; the others are
    // measured in alternating rounds (`rounds::alternate`), each round on
    // fresh namespaces.
    let mut results: Vec<Result<Vec<Round>, String>> = vec![Ok(Vec::new()); SYSTEMS.len()];
    let mut runnable = Vec::new();
    for (i, &system) in SYSTEMS.iter().enumerate() {
        if !c.selected(system.name()) || (system.dpdk() && !cfg!(insane_dpdk_available)) {
            continue;
        }
        match (system.dpdk(), &available) {
            (false, Err(why)) => {
                results[i] = Err(format!("no network-namespace test hosts: {why}"));
            }
            _ => runnable.push(i),
        }
    }
    let measured = crate::rounds::alternate(&runnable, repeats, |i, round| {
        let system = SYSTEMS[i];
        let label = format!("reliable {} round {}", system.name(), round + 1);
        super::isolated_try(&label, timeout, move || measure(system, counts, placement))
    });
    for (i, r) in runnable.into_iter().zip(measured) {
        results[i] = r;
    }
    let row = |report: &mut Report, name: &str, unit: Unit, f: &dyn Fn(&Round) -> Option<f64>| {
        let cells = results
            .iter()
            .map(|r| match r {
                Ok(rounds) => {
                    let v: Vec<f64> = rounds.iter().filter_map(f).collect();
                    if v.is_empty() {
                        Cell::default()
                    } else {
                        Cell::from_samples(v)
                    }
                }
                Err(e) => Cell::failed(e.clone()),
            })
            .collect();
        report.row(name, unit, cells);
    };
    row(&mut report, "32 B RTT p50", Unit::Nanos, &|r| {
        r.rtt.map(|q| q[0])
    });
    row(&mut report, "32 B RTT p99", Unit::Nanos, &|r| {
        r.rtt.map(|q| q[1])
    });
    row(&mut report, "1 MiB messages", Unit::BitsPerSec, &|r| {
        r.bulk_bps
    });
    row(
        &mut report,
        "1 MiB messages, 1% loss",
        Unit::BitsPerSec,
        &|r| r.lossy_bulk_bps,
    );
    row(
        &mut report,
        "32 B RTT with a lost frame p50",
        Unit::Nanos,
        &|r| r.recovery.map(|q| q.0[0]),
    );
    row(
        &mut report,
        "32 B RTT with a lost frame p99",
        Unit::Nanos,
        &|r| r.recovery.map(|q| q.0[1]),
    );
    let lost: Vec<String> = SYSTEMS
        .iter()
        .zip(&results)
        .filter_map(|(s, r)| {
            let n: u64 = r
                .as_ref()
                .ok()?
                .iter()
                .filter_map(|r| r.recovery)
                .map(|q| q.1)
                .sum();
            Some(format!("{} {n}", s.name()))
        })
        .collect();
    report.param(
        "lossy round trips over the threshold (all rounds)",
        lost.join(", "),
    );
    report.notes.push(format!(
        "Two network namespaces joined through a bridge namespace (fresh for each contestant \
         and round); client in A, server in B; {}. The 1% loss rows: nftables in the bridge \
         drops 1% of UDP and TCP frames at random. A lossy round trip over {} µs counts as one \
         that lost a frame; with no such round trip the cell is `-`.",
        placement.describe(),
        LOSS_THRESHOLD.as_micros()
    ));
    report.notes.push(
        "Best-effort contestants: 32 B RTT only (no messages over one datagram, no recovery). \
         Goals (issue 16): reliable over AF_XDP RTT <= 0.5x io_uring TCP; 1 MiB throughput \
         >= kernel TCP with and without loss; a lost packet recovered within 1 ms p99."
            .to_owned(),
    );
    report.notes.extend(c.note.iter().cloned());
    if !cfg!(insane_dpdk_available) {
        report.notes.push(
            "DPDK memif contestants not measured: insane-bench was built without DPDK \
             (--features dpdk, libdpdk-dev installed)."
                .to_owned(),
        );
    }
    super::net::disturbance_notes(&mut report);
    report
}

/// Every measurement of `system` on one fresh bridged pair.
fn measure(system: System, counts: Counts, placement: Placement) -> Result<Round, String> {
    if system.dpdk() {
        return memif::measure(system, counts);
    }
    let hosts = TestHosts::bridged_pair().ctx("test hosts")?;
    let mut round = Round::default();
    let rtt = |hosts: &TestHosts, trips| {
        exchange(
            system,
            hosts,
            Job::Rtt {
                warmup: counts.warmup,
                trips,
            },
            placement,
        )
    };
    let bulk = |hosts: &TestHosts| {
        exchange(
            system,
            hosts,
            Job::Bulk {
                messages: counts.bulk,
            },
            placement,
        )
        .map(|o| o.bits_per_sec(counts.bulk))
    };
    let samples = rtt(&hosts, counts.trips)?.samples;
    round.rtt = Some(quantiles(&samples));
    if system.reliable() {
        round.bulk_bps = Some(bulk(&hosts)?);
        hosts.drop_frames(BRIDGE, 1).ctx("nft")?;
        round.lossy_bulk_bps = Some(bulk(&hosts)?);
        let samples = rtt(&hosts, counts.lossy_trips)?.samples;
        let lost: Vec<u64> = samples
            .into_iter()
            .filter(|&ns| ns > LOSS_THRESHOLD.as_nanos() as u64)
            .collect();
        if !lost.is_empty() {
            round.recovery = Some((quantiles(&lost), lost.len() as u64));
        }
    }
    Ok(round)
}

/// p50 and p99 of `ns`.
fn quantiles(ns: &[u64]) -> [f64; 2] {
    let mut h = latency_histogram();
    for &v in ns {
        h.saturating_record(v);
    }
    [
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    ]
}

/// What the client of one exchange saw.
struct Outcome {
    /// Round-trip times in ns (`Job::Rtt`).
    samples: Vec<u64>,
    /// From the first message sent to the receiver's answer (`Job::Bulk`).
    elapsed: Duration,
}

impl Outcome {
    fn bits_per_sec(&self, messages: u64) -> f64 {
        (messages * MIB as u64 * 8) as f64 / self.elapsed.as_secs_f64()
    }
}

/// A side's addresses: over AF_XDP the stacks own `.100` (A) and `.200`
/// (B) of the kernel's subnet; otherwise the hosts' kernel addresses.
#[derive(Clone, Debug)]
struct Side {
    netns: String,
    iface: String,
    addr: SocketAddr,
}

fn sides(system: System, hosts: &TestHosts) -> [Side; 2] {
    [(0, 0, 100), (1, 1, 200)].map(|(host, link, stack)| {
        let iface = hosts.iface(host, link);
        let ip = if system.xdp() {
            let o = iface.addr.octets();
            Ipv4Addr::new(o[0], o[1], o[2], stack)
        } else {
            iface.addr
        };
        Side {
            netns: hosts.netns(host).to_owned(),
            iface: iface.name.clone(),
            addr: SocketAddr::from((ip, PORT)),
        }
    })
}

/// Runs `job` between a server in B (pinned to the server CPU) and a
/// client in A (on a thread pinned to the client CPU).
fn exchange(
    system: System,
    hosts: &TestHosts,
    job: Job,
    placement: Placement,
) -> Result<Outcome, String> {
    let [a, b] = sides(system, hosts);
    // The server stays until the client has everything (its last
    // messages may still need retransmitting).
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let (b, done) = (b.clone(), done.clone());
        start_server("reliable-server", placement.server, move |ready: Ready| {
            enter_netns(&b.netns).ctx("server")?;
            let config = xdp_config(system, &b)?;
            serve(system, b.addr, &config, job, |addr| ready.send(addr), &done)
        })?
    };
    let client = std::thread::scope(|s| {
        s.spawn(|| {
            pin_current_thread(placement.client)?;
            enter_netns(&a.netns).ctx("client")?;
            let config = xdp_config(system, &a)?;
            let r = client(system, a.addr, &config, b.addr, job);
            done.store(true, Ordering::Release);
            r
        })
        .join()
        .map_err(|p| format!("client panicked: {}", super::panic_message(&*p)))?
    });
    done.store(true, Ordering::Release);
    let served = server.join();
    let outcome = client.map_err(|e| format!("client: {e}"))?;
    served?;
    Ok(outcome)
}

fn insane_rt() -> Result<insane::runtime::Runtime, String> {
    super::net::insane_runtime(
        insane::runtime::Driver::Uring,
        super::runtime::Idle::Default,
    )
}

/// The `[xdp]` section of `side` for AF_XDP contestants, none otherwise.
fn xdp_config(system: System, side: &Side) -> Result<insane::config::Config, String> {
    if !system.xdp() {
        return Ok(insane::config::Config::default());
    }
    insane::config::Config::from_toml_str(
        &format!(
            "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"{}/24\"\n",
            side.iface,
            side.addr.ip()
        ),
        "reliable scenario",
    )
    .ctx("config")
}

/// Binds `system`'s endpoint at `addr` with `config` and checks the
/// policy's choice.
async fn bind(
    system: System,
    addr: SocketAddr,
    config: &insane::config::Config,
) -> Result<insane::qos::Endpoint, String> {
    use insane::qos::{Qos, TransportConfig};
    let qos = if system.reliable() {
        Qos::builder().critical().reliable().poll().build()
    } else {
        Qos::builder().critical().best_effort().poll().build()
    };
    let transport = TransportConfig {
        prefer: (system == System::ReliableUdp)
            .then_some(insane::qos::policy::TransportKind::UdpReliable),
        ..TransportConfig::default()
    };
    let ep = insane::qos::Endpoint::bind_with_config(addr, qos, transport, config)
        .await
        .ctx("bind")?;
    if Some(ep.driver()) != system.kind() {
        return Err(format!("the policy chose {}", ep.explain()));
    }
    Ok(ep)
}

fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&seq.to_be_bytes()[..n]);
}

fn seq_of(buf: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(buf.get(..8)?.try_into().ok()?))
}

/// `warmup` untimed, then `trips` timed round trips; `trip(seq)` does one
/// and returns the sequence number its echo carries.
async fn rtt_loop<F>(warmup: u64, trips: u64, mut trip: F) -> Result<Outcome, String>
where
    F: AsyncFnMut(u64) -> Result<Option<u64>, String>,
{
    let mut samples = Vec::with_capacity(trips as usize);
    for seq in 0..warmup + trips {
        let t = Instant::now();
        let echo = trip(seq).await?;
        let rtt = t.elapsed();
        if echo != Some(seq) {
            return Err(format!("round trip {seq}: echo carries {echo:?}"));
        }
        if seq >= warmup {
            samples.push(rtt.as_nanos() as u64);
        }
    }
    Ok(Outcome {
        samples,
        elapsed: Duration::ZERO,
    })
}

/// Waits (while the runtime keeps driving the endpoint) until the client
/// says it is done, at most `IDLE_LIMIT`.
async fn linger(done: &AtomicBool) {
    let until = Instant::now() + IDLE_LIMIT;
    while !done.load(Ordering::Acquire) && Instant::now() < until {
        insane::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The server in B: echoes round trips, or takes the bulk messages and
/// answers the last.
fn serve(
    system: System,
    addr: SocketAddr,
    config: &insane::config::Config,
    job: Job,
    ready: impl FnOnce(SocketAddr),
    done: &AtomicBool,
) -> Result<(), String> {
    if system == System::TokioTcp {
        return tokio_serve(addr, job, ready);
    }
    insane_rt()?.block_on(async move {
        let ep = bind(system, addr, config).await?;
        ready(addr);
        let recv = async || match insane::time::timeout(IDLE_LIMIT, ep.recv()).await {
            Ok(m) => m.ctx("recv"),
            Err(_) => Err(format!(
                "server idle ({})",
                ep.transport().diagnostics().unwrap_or_default()
            )),
        };
        match job {
            Job::Rtt { warmup, trips } => {
                for _ in 0..warmup + trips {
                    let msg = recv().await?;
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).ctx("echo")?;
                    // The peer as seen (over TCP: the client's connection).
                    let to = msg.peer();
                    drop(msg);
                    ep.send_to(out, to).await.ctx("send")?;
                }
            }
            Job::Bulk { messages } => {
                let mut from = None;
                for i in 0..messages {
                    let msg = recv().await?;
                    if msg.len() != MIB || seq_of(&msg) != Some(i) {
                        return Err(format!(
                            "message {i}: {} bytes, seq {:?}",
                            msg.len(),
                            seq_of(&msg)
                        ));
                    }
                    from = Some(msg.peer());
                }
                if std::env::var_os("INSANE_BENCH_RELIABLE_DIAG").is_some() {
                    say!(
                        "  {} server: {}",
                        system.name(),
                        ep.transport().diagnostics().unwrap_or_default()
                    );
                }
                let mut out = ep.buffer().await;
                out.extend_from_slice(&[1]).ctx("answer")?;
                ep.send_to(out, from.ok_or("no message")?)
                    .await
                    .ctx("answer")?;
            }
        }
        linger(done).await;
        Ok(())
    })
}

/// The client in A: the round trips' times, or the bulk transfer's.
fn client(
    system: System,
    addr: SocketAddr,
    config: &insane::config::Config,
    server: SocketAddr,
    job: Job,
) -> Result<Outcome, String> {
    if system == System::TokioTcp {
        return tokio_client(server, job);
    }
    insane_rt()?.block_on(async move {
        let ep = Arc::new(bind(system, addr, config).await?);
        ep.connect(server).await.ctx("connect")?;
        let recv =
            async |ep: &insane::qos::Endpoint| match insane::time::timeout(IDLE_LIMIT, ep.recv())
                .await
            {
                Ok(m) => m.ctx("recv"),
                Err(_) => Err(format!(
                    "client idle ({})",
                    ep.transport().diagnostics().unwrap_or_default()
                )),
            };
        match job {
            Job::Rtt { warmup, trips } => {
                let mut msg = [0x5a_u8; SMALL];
                rtt_loop(warmup, trips, async |seq| {
                    stamp(&mut msg, seq);
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).ctx("payload")?;
                    ep.send(out).await.ctx("send")?;
                    Ok(seq_of(&recv(&ep).await?))
                })
                .await
            }
            Job::Bulk { messages } => {
                let start = Instant::now();
                let sender = {
                    let ep = ep.clone();
                    insane::task::spawn(async move {
                        for seq in 0..messages {
                            let mut out = ep.buffer().await;
                            out.resize(MIB, 0x5a).ctx("message")?;
                            stamp(&mut out, seq);
                            ep.send(out).await.ctx("send")?;
                        }
                        Ok::<_, String>(())
                    })
                };
                let answer = match insane::time::timeout(bulk_limit(messages), ep.recv()).await {
                    Ok(m) => m.ctx("recv answer")?,
                    Err(_) => {
                        return Err(format!(
                            "no answer after {messages} MiB within {:?} ({})",
                            bulk_limit(messages),
                            ep.transport().diagnostics().unwrap_or_default()
                        ));
                    }
                };
                let elapsed = start.elapsed();
                if std::env::var_os("INSANE_BENCH_RELIABLE_DIAG").is_some() {
                    say!(
                        "  {}: {}",
                        system.name(),
                        ep.transport().diagnostics().unwrap_or_default()
                    );
                }
                sender.await.ctx("sender")??;
                if answer[..] != [1] {
                    return Err(format!("answer of {} bytes", answer.len()));
                }
                Ok(Outcome {
                    samples: Vec::new(),
                    elapsed,
                })
            }
        }
    })
}

fn tokio_rt() -> Result<tokio::runtime::Runtime, String> {
    super::net::tokio_runtime()
}

/// Reads one length-prefixed message into `buf`.
async fn read_msg(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let len = tokio::time::timeout(IDLE_LIMIT, s.read_u32())
        .await
        .ctx("idle")?
        .ctx("read length")? as usize;
    buf.resize(len, 0);
    s.read_exact(buf).await.ctx("read message")?;
    Ok(())
}

async fn write_msg(s: &mut tokio::net::TcpStream, msg: &[u8]) -> Result<(), String> {
    s.write_u32(msg.len() as u32).await.ctx("write length")?;
    s.write_all(msg).await.ctx("write message")
}

fn tokio_serve(addr: SocketAddr, job: Job, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    tokio_rt()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.ctx("bind")?;
        ready(addr);
        let (mut s, _) = tokio::time::timeout(IDLE_LIMIT, listener.accept())
            .await
            .ctx("accept")?
            .ctx("accept")?;
        s.set_nodelay(true).ctx("nodelay")?;
        let mut buf = Vec::new();
        match job {
            Job::Rtt { warmup, trips } => {
                for _ in 0..warmup + trips {
                    read_msg(&mut s, &mut buf).await?;
                    write_msg(&mut s, &buf).await?;
                }
            }
            Job::Bulk { messages } => {
                for i in 0..messages {
                    read_msg(&mut s, &mut buf).await?;
                    if buf.len() != MIB || seq_of(&buf) != Some(i) {
                        return Err(format!("message {i}: {} bytes", buf.len()));
                    }
                }
                write_msg(&mut s, &[1]).await?;
            }
        }
        // The client closes first.
        let _ = tokio::time::timeout(IDLE_LIMIT, s.read_u8()).await;
        Ok(())
    })
}

fn tokio_client(server: SocketAddr, job: Job) -> Result<Outcome, String> {
    tokio_rt()?.block_on(async move {
        let s = tokio::time::timeout(IDLE_LIMIT, tokio::net::TcpStream::connect(server))
            .await
            .ctx("connect")?
            .ctx("connect")?;
        s.set_nodelay(true).ctx("nodelay")?;
        let (mut rd, mut wr) = s.into_split();
        match job {
            Job::Rtt { warmup, trips } => {
                let mut s = rd.reunite(wr).ctx("reunite")?;
                let mut msg = [0x5a_u8; SMALL];
                let mut buf = Vec::new();
                rtt_loop(warmup, trips, async |seq| {
                    stamp(&mut msg, seq);
                    write_msg(&mut s, &msg).await?;
                    read_msg(&mut s, &mut buf).await?;
                    Ok(seq_of(&buf))
                })
                .await
            }
            Job::Bulk { messages } => {
                let start = Instant::now();
                let writer = tokio::spawn(async move {
                    let mut msg = vec![0x5a_u8; MIB];
                    for seq in 0..messages {
                        stamp(&mut msg, seq);
                        wr.write_u32(MIB as u32).await.ctx("write length")?;
                        wr.write_all(&msg).await.ctx("write message")?;
                    }
                    Ok::<_, String>(wr)
                });
                let len = tokio::time::timeout(bulk_limit(messages), rd.read_u32())
                    .await
                    .ctx("no answer")?
                    .ctx("read answer")?;
                let mut answer = vec![0u8; len as usize];
                rd.read_exact(&mut answer).await.ctx("read answer")?;
                let elapsed = start.elapsed();
                writer.await.ctx("writer")??;
                if answer != [1] {
                    return Err(format!("answer of {len} bytes"));
                }
                Ok(Outcome {
                    samples: Vec::new(),
                    elapsed,
                })
            }
        }
    })
}

/// The DPDK memif contestants: two processes of this binary, an EAL each
/// (the EAL is initialised once per process), the server on lcore 0 and
/// the client on lcore 1, running the same [`serve`] and [`client`] as
/// the veth contestants with a `[dpdk]` section. memif does not lose
/// frames: no loss rows.
///
/// Shutdown follows the memif rule (the PMD unmaps shared memory when the
/// peer goes, which can crash a receive in flight): the client reports and
/// stops polling, the server stops polling and exits, then the client is
/// told to exit.
mod memif {
    use std::process::ExitCode;

    use super::*;
    use crate::scenarios::memif_pair;

    /// Environment variable that makes this binary a memif child (its
    /// role: `server` or `client`).
    const CHILD: &str = "INSANE_BENCH_RELIABLE_MEMIF";
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 2);
    const PREFIX: &str = "insane-bench-reliable";

    /// One round of `system` over memif: the RTT, then (reliable) the
    /// throughput, each with a fresh pair of processes.
    pub fn measure(system: System, counts: Counts) -> Result<Round, String> {
        let rtt = run_pair(
            system,
            Job::Rtt {
                warmup: counts.warmup,
                trips: counts.trips,
            },
        )?;
        let mut round = Round {
            rtt: Some([rtt[0], rtt[1]]),
            ..Round::default()
        };
        if system.reliable() {
            let messages = counts.bulk;
            let secs = run_pair(system, Job::Bulk { messages })?[0];
            round.bulk_bps = Some((messages * MIB as u64 * 8) as f64 / secs);
        }
        Ok(round)
    }

    fn job_arg(job: Job) -> String {
        match job {
            Job::Rtt { warmup, trips } => format!("rtt:{warmup}:{trips}"),
            Job::Bulk { messages } => format!("bulk:{messages}"),
        }
    }

    fn parse_job(arg: &str) -> Option<Job> {
        let parts: Vec<u64> = arg
            .split(':')
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match (arg.split(':').next()?, parts.as_slice()) {
            ("rtt", &[warmup, trips]) => Some(Job::Rtt { warmup, trips }),
            ("bulk", &[messages]) => Some(Job::Bulk { messages }),
            _ => None,
        }
    }

    /// Runs `job` between a server and a client process; the numbers of
    /// the client's `RESULT` line.
    fn run_pair(system: System, job: Job) -> Result<Vec<f64>, String> {
        memif_pair::run(
            CHILD,
            &[
                ("INSANE_BENCH_RELIABLE_SYSTEM", system.name().to_owned()),
                ("INSANE_BENCH_RELIABLE_JOB", job_arg(job)),
            ],
        )?
        .split_whitespace()
        .map(|v| v.parse::<f64>().ctx("RESULT"))
        .collect()
    }

    fn config(server: bool) -> Result<insane::config::Config, String> {
        if server {
            memif_pair::config(PREFIX, true, SERVER, "02:00:00:00:99:01")
        } else {
            memif_pair::config(PREFIX, false, CLIENT, "02:00:00:00:99:02")
        }
    }

    /// When this process is a memif child, runs it and returns its exit
    /// code; otherwise `None`.
    pub fn child_main() -> Option<ExitCode> {
        let role = std::env::var(CHILD).ok()?;
        let run = || -> Result<(), String> {
            let env = |k: &str| std::env::var(k).ctx(k);
            let name = env("INSANE_BENCH_RELIABLE_SYSTEM")?;
            let system = System::from_name(&name).ok_or(format!("no contestant {name}"))?;
            let job_text = env("INSANE_BENCH_RELIABLE_JOB")?;
            let job = parse_job(&job_text).ok_or(format!("bad job {job_text}"))?;
            let server_addr = SocketAddr::from((SERVER, PORT));
            if role == "server" {
                let config = config(true)?;
                // Told to stop on stdin.
                let done = Arc::new(AtomicBool::new(false));
                let stop = done.clone();
                std::thread::spawn(move || {
                    memif_pair::wait_for_parent();
                    stop.store(true, Ordering::Release);
                });
                serve(
                    system,
                    server_addr,
                    &config,
                    job,
                    |_| memif_pair::say_to_parent("READY"),
                    &done,
                )
            } else {
                let config = config(false)?;
                let local = SocketAddr::from((CLIENT, PORT));
                let outcome = client(system, local, &config, server_addr, job)?;
                match job {
                    Job::Rtt { .. } => {
                        let [p50, p99] = quantiles(&outcome.samples);
                        memif_pair::say_to_parent(&format!("RESULT {p50} {p99}"));
                    }
                    Job::Bulk { .. } => memif_pair::say_to_parent(&format!(
                        "RESULT {}",
                        outcome.elapsed.as_secs_f64()
                    )),
                }
                // Not polling any more; exit when told.
                memif_pair::wait_for_parent();
                Ok(())
            }
        };
        Some(memif_pair::exit_code(run()))
    }
}

/// When this process is a child of the `reliable` scenario (a DPDK memif
/// server or client), runs it and returns its exit code; otherwise
/// `None`. Called first thing in `main`.
pub fn child_main() -> Option<std::process::ExitCode> {
    memif::child_main()
}
