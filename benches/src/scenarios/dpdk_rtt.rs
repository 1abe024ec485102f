//! `dpdk-rtt`: two processes over DPDK `net_memif` (this binary spawned
//! twice: a server pinned to CPU 0 and a client pinned to CPU 1, each with
//! its own EAL), measured three ways in the same binary:
//!
//! * **insane-dpdk-endpoint**: the echo server a user writes on insane's
//!   public API: [`Endpoint::bind_with_config`](insane::qos::Endpoint)
//!   with `latency = critical, best-effort, resources = poll` on the
//!   `[dpdk]` address, then `recv().await`, `buffer().await`,
//!   `extend_from_slice`, `send_to().await` on a one-core insane runtime
//!   (the transmit scheduler, the `Transport` trait, the runtime's tasks
//!   and reactors on top of the stack). The client is the stack client of
//!   the `insane-dpdk` row, so the difference between the two rows is the
//!   server's API layer.
//! * **insane-dpdk**: insane's userspace stack ([`Interface`] over
//!   [`DpdkDevice`]): UDP datagrams of `--size` bytes (64 by default) with
//!   Ethernet/IPv4/UDP headers written into the mbuf headroom and checked
//!   on receipt (ARP, checksums, endpoint demultiplexing); the echo server
//!   turns the request's mbuf into the reply ([`Interface::reuse_rx`], no
//!   allocation, no copy) and sends it back through the stack.
//! * **raw-dpdk**: a loop written directly on `insane-dpdk-sys`
//!   (`rte_eth_rx_burst`/`tx_burst`, `rte_pktmbuf_alloc`) that does what a
//!   minimal *correct* UDP responder must, and no more: the client builds
//!   the same Ethernet/IPv4/UDP frames (complete checksums); the server
//!   checks MAC, ethertype, IPv4 header, checksums, destination address and
//!   port, then echoes in place by swapping MACs, addresses and ports (the
//!   usual raw DPDK idiom; swapping leaves both checksums valid); the
//!   client checks the echo's checksums. What raw leaves out and insane
//!   does: ARP (raw uses static MACs), statistics, the endpoint queue, the
//!   fresh TTL and header rewrite of a reply (raw swaps fields).
//!
//! Rows: round-trip time p50 and p99 (one message in flight), the one-way
//! message rate (bursts of `--burst`, 32 by default, measured at the
//! receiver from the first to the last message), and the CPU time of one
//! round trip with both ends in one thread on a `net_ring` pair (a third
//! child process): the processing cost of the two stacks against the raw
//! loop's, without the cross-core transfer and with little of this VM's
//! noise, which the memif rows have plenty of. The report's ratio
//! column is insane relative to raw (the overhead). Feature `dpdk` of
//! insane-bench; without it, or without libdpdk, the cells say why.

use std::process::ExitCode;

use crate::report::{Cell, Report, Unit};
use crate::scenarios::Common;

/// Systems: the public API, the stack under it, the raw loop (the ratio
/// columns compare each insane one with raw).
const SYSTEMS: [&str; 3] = ["insane-dpdk-endpoint", "insane-dpdk", "raw-dpdk"];

/// Index of the raw loop in [`SYSTEMS`].
const RAW: usize = 2;

/// What one child runs (the `INSANE_BENCH_DPDK_MODE` it is given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An echo server on [`Endpoint`](insane::qos::Endpoint) (the stack
    /// client).
    Endpoint,
    /// insane's stack on both ends.
    Stack,
    /// The raw rx/tx_burst loop on both ends.
    Raw,
}

impl Mode {
    /// The mode of column `s` of [`SYSTEMS`].
    fn of_system(s: usize) -> Mode {
        [Mode::Endpoint, Mode::Stack, Mode::Raw][s]
    }

    /// The mode's name in the child processes' environment (only built
    /// with libdpdk, as the children are).
    #[cfg(insane_dpdk_available)]
    fn name(self) -> &'static str {
        match self {
            Mode::Endpoint => "endpoint",
            Mode::Stack => "insane",
            Mode::Raw => "raw",
        }
    }

    #[cfg(insane_dpdk_available)]
    fn from_name(name: &str) -> Mode {
        match name {
            "endpoint" => Mode::Endpoint,
            "raw" => Mode::Raw,
            _ => Mode::Stack,
        }
    }
}

/// Options of `dpdk-rtt`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages per burst in the rate measurement.
    #[arg(long, default_value_t = 32)]
    pub burst: usize,
}

/// Environment variable that makes this binary a `dpdk-rtt` child.
const CHILD: &str = "INSANE_BENCH_DPDK_CHILD";

/// When this process is a `dpdk-rtt` child (server or client), runs it and
/// returns its exit code; otherwise `None`. Called first thing in `main`.
pub fn child_main() -> Option<ExitCode> {
    let role = std::env::var(CHILD).ok()?;
    Some(imp::child(&role))
}

/// Runs the scenario.
pub fn run(args: &Args) -> Report {
    let c = &args.common;
    let mut report = Report::new("dpdk-rtt", &SYSTEMS);
    report.ratios = (0..RAW).map(|s| (s, RAW)).collect();
    // Many short alternating runs: this VM's speed changes between runs
    // (three modes seen, RTT ~330, ~550 and ~1950 ns for the raw loop,
    // ~400, ~600 and ~2000 ns for the stack),
    // and the paired ratio below needs enough pairs that saw one mode.
    let repeats = c.repeats_or(1, 9);
    let trips: u64 = if c.quick { 20_000 } else { 200_000 };
    let messages: u64 = if c.quick { 500_000 } else { 5_000_000 };
    report.param(
        "transport",
        "DPDK net_memif between two processes (server CPU 0, client CPU 1)",
    );
    report.param("payload", format!("{} B", args.size));
    report.param("burst (rate)", args.burst);
    report.param("round trips per run", trips);
    report.param("messages per rate run", messages);
    report.param("timed runs (median)", repeats);
    report
        .notes
.push("insane-dpdk-endpoint: the echo server on insane's public API (Endpoint::bind_with_config with latency=critical, best-effort, resources=poll on the [dpdk] address; recv().await, buffer().await, extend_from_slice, send_to().await) on a one-core insane runtime, against the insane-dpdk client; CPU per round trip: that server and the stack client in one runtime thread. insane-dpdk: UDP through insane's userspace stack (headers prepended in the mbuf headroom, checksums computed and verified in software (net_memif offers no offload), ARP, endpoint queues; the echo reuses the request mbuf). raw-dpdk: rx_burst/tx_burst on insane-dpdk-sys doing what a minimal correct UDP responder must: same Ethernet/IPv4/UDP frames with checksums built by the client, checked (MAC, IPv4 header, checksums, address, port) and echoed in place by MAC/IP/port swap by the server, echo checksums checked by the client; no ARP (static MACs), no statistics. CPU per round trip (the thread's CPU time, getrusage, not wall-clock: time lost to other processes on the CPU does not count): client and echo server in one thread on a net_ring pair (rings of mbuf pointers, no copy), static ARP entries learned by one exchange first, one message in flight; the same code paths as the memif rows without the cross-core transfer. Ratio column: insane relative to raw.".into());
    report.notes.extend(c.note.iter().cloned());
    report.param(
        "order",
        "interleaved rounds: insane-dpdk-endpoint, insane-dpdk, raw-dpdk, then again",
    );
    let mut cells: [[Vec<f64>; 4]; 3] = Default::default();
    let mut errors: [Option<String>; 3] = Default::default();
    for (s, system) in SYSTEMS.iter().enumerate() {
        if !c.selected(system) {
            errors[s] = Some("not selected (--only)".into());
        }
    }
    // Runs alternate between the two systems: this VM's speed changes
    // from minute to minute (see the README's Performance section), and
    // alternating exposes both to the same periods, so their ratio holds.
    for run in 0..repeats + c.warmup {
        for (s, system) in SYSTEMS.iter().enumerate() {
            if errors[s].is_some() {
                continue;
            }
            let label = format!("dpdk-rtt {system} run {}", run + 1);
            let params = RunParams {
                mode: Mode::of_system(s),
                trips,
                messages,
                size: args.size,
                burst: args.burst,
            };
            let result = super::isolated_try(
                &label,
                std::time::Duration::from_secs(c.timeout),
                move || imp::measure(&params),
            );
            match result {
                Ok(m) if run >= c.warmup => {
                    cells[s][0].push(m.p50_ns);
                    cells[s][1].push(m.p99_ns);
                    cells[s][2].push(m.rate);
                }
                Ok(_) => {}
                Err(e) => errors[s] = Some(e),
            }
            if errors[s].is_some() {
                continue;
            }
            let result = super::isolated_try(
                &format!("dpdk-rtt {system} cpu run {}", run + 1),
                std::time::Duration::from_secs(c.timeout),
                move || imp::measure_cpu(&params),
            );
            match result {
                Ok(ns) if run >= c.warmup => cells[s][3].push(ns),
                Ok(_) => {}
                Err(e) => errors[s] = Some(e),
            }
        }
    }
    for s in 0..RAW {
        if let Some(note) = paired_note(SYSTEMS[s], &cells[s], &cells[RAW]) {
            report.notes.push(note);
        }
    }
    let rows: [(&str, Unit); 4] = [
        ("RTT p50", Unit::Nanos),
        ("RTT p99", Unit::Nanos),
        ("one-way rate", Unit::Rate { what: "msg" }),
        ("CPU per round trip, one thread", Unit::Nanos),
    ];
    for (r, (name, unit)) in rows.into_iter().enumerate() {
        let row_cells = (0..SYSTEMS.len())
            .map(|s| match &errors[s] {
                Some(e) => Cell::failed(e.clone()),
                None => Cell::from_samples(cells[s][r].clone()),
            })
            .collect();
        report.row(&format!("{name} ({} B)", args.size), unit, row_cells);
    }
    report
}

/// The ratios of each run of `system` (cells `subject`) to the raw run
/// of its round (which saw
/// the same period of this VM), as a note: their median is the comparison
/// least disturbed by the VM's changes of speed, which can hit one
/// system's runs more than the other's and skew the two medians. Pairs
/// whose ratio is outside 3/4..4/3 straddled a change of mode (the modes
/// differ by 1.4x to 3.5x; the two systems, in one mode, by less than
/// 1.2x) and are left out, and counted.
fn paired_note(system: &str, subject: &[Vec<f64>; 4], raw: &[Vec<f64>; 4]) -> Option<String> {
    let paired = |row: usize, raw_over_insane: bool| {
        let all: Vec<f64> = subject[row]
            .iter()
            .zip(&raw[row])
            .filter(|(i, r)| **i > 0.0 && **r > 0.0)
            .map(|(i, r)| if raw_over_insane { r / i } else { i / r })
            .collect();
        let mut same_mode: Vec<f64> = all
            .iter()
            .copied()
            .filter(|r| (0.75..=4.0 / 3.0).contains(r))
            .collect();
        same_mode.sort_by(f64::total_cmp);
        let (first, last) = (*same_mode.first()?, *same_mode.last()?);
        let median = crate::report::median(&same_mode);
        Some((median, first, last, same_mode.len(), all.len()))
    };
    let (rtt, rtt_lo, rtt_hi, n, of) = paired(0, true)?;
    let (rate, rate_lo, rate_hi, m, _) = paired(2, false)?;
    Some(format!(
        "Paired runs (each {system} run with the raw run of its round; pairs that straddled a change of the VM's speed mode, ratio outside 0.75-1.33, left out): RTT p50 {system}/raw {rtt:.2}x (median of {n} of {of} pairs, range {rtt_lo:.2}-{rtt_hi:.2}x), one-way rate {rate:.2}x (median of {m}, range {rate_lo:.2}-{rate_hi:.2}x); above 1: insane faster."
    ))
}

/// One measurement's parameters (both builds of `imp` take them).
#[derive(Clone, Copy, Debug)]
pub struct RunParams {
    pub mode: Mode,
    pub trips: u64,
    pub messages: u64,
    pub size: usize,
    pub burst: usize,
}

/// One measurement's results.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub rate: f64,
}

#[cfg(insane_dpdk_available)]
mod imp {
    //! The measurement: spawns the two children and reads their results.

    use std::io::{BufRead, BufReader, Write};
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use insane::config::Config;
    use insane::qos::{Endpoint, Qos, TransportKind};
    use insane_dpdk::{Eal, Port, PortConfig};
    use insane_dpdk_sys as sys;
    use insane_net::config::Ipv4Cidr;
    use insane_net::stack::dpdk::DpdkDevice;
    use insane_net::stack::{EndpointId, EthernetAddress, Interface, InterfaceConfig, TxFrame};

    use super::{CHILD, Measured, Mode, RunParams};
    use crate::scenarios::net::CpuTimes;

    const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
    const UDP_PORT: u16 = 9000;
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 11, 1];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 11, 2];
    /// Headers insane writes (Ethernet 14 + IPv4 20 + UDP 8); raw frames
    /// get the same length.
    const HEADERS: usize = 42;
    const TAG_PING: u8 = 1;
    const TAG_RATE: u8 = 2;
    const TAG_REPORT: u8 = 3;
    /// Busy-poll iterations without progress before a child gives up
    /// (about tens of seconds; bounds every loop).
    const SPIN_LIMIT: u64 = 2_000_000_000;

    /// Lines from a child's stdout, through a thread.
    fn lines(child: &mut Child) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        rx
    }

    fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, who: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find(prefix) {
                        return Ok(line[i..].to_string());
                    }
                    if let Some(i) = line.find("FAILED") {
                        return Err(format!("{who}: {}", &line[i..]));
                    }
                }
                Err(_) => return Err(format!("{who}: no {prefix} line")),
            }
        }
    }

    fn spawn(role: &str, p: &RunParams, sock: &str) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        Command::new(exe)
            .env(CHILD, role)
            .env("INSANE_BENCH_DPDK_MODE", p.mode.name())
            .env("INSANE_BENCH_DPDK_SOCK", sock)
            .env("INSANE_BENCH_DPDK_TRIPS", p.trips.to_string())
            .env("INSANE_BENCH_DPDK_MESSAGES", p.messages.to_string())
            .env("INSANE_BENCH_DPDK_SIZE", p.size.to_string())
            .env("INSANE_BENCH_DPDK_BURST", p.burst.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning the {role}: {e}"))
    }

    fn finish(mut child: Child) -> Result<(), String> {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "bye");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(format!("child exited with {s}")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    return Err("child did not exit".into());
                }
            }
        }
    }

    /// Runs one server/client pair and parses the client's result line.
    pub fn measure(p: &RunParams) -> Result<Measured, String> {
        if !insane_dpdk::AVAILABLE {
            return Err(insane_dpdk::Error::unavailable().to_string());
        }
        if p.size < 9 || p.size > 1400 || p.burst == 0 || p.burst > insane_dpdk::BURST {
            return Err(format!(
                "size must be 9..=1400 and burst 1..={} (got {} and {})",
                insane_dpdk::BURST,
                p.size,
                p.burst
            ));
        }
        let sock = format!("/tmp/insane-bench-memif-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&sock);
        let mut server = spawn("server", p, &sock)?;
        let server_rx = lines(&mut server);
        if let Err(e) = wait_for(&server_rx, "SERVER-READY", "server") {
            let _ = server.kill();
            return Err(e);
        }
        let mut client = match spawn("client", p, &sock) {
            Ok(c) => c,
            Err(e) => {
                let _ = server.kill();
                return Err(e);
            }
        };
        let client_rx = lines(&mut client);
        let result = wait_for(&client_rx, "RESULT", "client");
        let server_done = wait_for(&server_rx, "SERVER-DONE", "server");
        // Neither polls any more: close the server's port, then the client's.
        let s = finish(server);
        let c = finish(client);
        let _ = std::fs::remove_file(&sock);
        let line = result?;
        server_done?;
        s?;
        c?;
        let field = |name: &str| -> Result<f64, String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no {name} in {line:?}"))
        };
        Ok(Measured {
            p50_ns: field("p50=")?,
            p99_ns: field("p99=")?,
            rate: field("rate=")?,
        })
    }

    /// Iterations of the one-thread CPU measurement per round-trip run.
    const CPU_TRIPS_PER_TRIP: u64 = 5;

    /// Runs the one-thread CPU measurement in a child (its own EAL) and
    /// returns its nanoseconds per round trip.
    pub fn measure_cpu(p: &RunParams) -> Result<f64, String> {
        if !insane_dpdk::AVAILABLE {
            return Err(insane_dpdk::Error::unavailable().to_string());
        }
        let mut child = spawn("cpu", p, "-")?;
        let rx = lines(&mut child);
        let result = wait_for(&rx, "RESULT", "cpu child");
        let done = finish(child);
        let line = result?;
        done?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("cpu="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no cpu= in {line:?}"))
    }

    /// Reads a numeric environment variable of the child.
    fn env_num(name: &str) -> Result<u64, String> {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} missing or not a number"))
    }

    /// What keeps a child's port open: its queue, or the stack built on it.
    enum Open {
        Queue(insane_dpdk::Queue),
        Stack(Box<Interface<DpdkDevice>>),
        Empty,
    }

    impl Open {
        /// The stack on the queue (built on first use).
        fn stack(&mut self, ip: Ipv4Addr) -> Result<&mut Interface<DpdkDevice>, String> {
            if let Open::Queue(_) = self {
                let Open::Queue(queue) = std::mem::replace(self, Open::Empty) else {
                    return Err("the port's queue is gone".into());
                };
                let device = DpdkDevice::new(queue).map_err(|e| e.to_string())?;
                let config = InterfaceConfig::new(Ipv4Cidr::new(ip, 24).into());
                *self = Open::Stack(Box::new(Interface::new(device, config)));
            }
            match self {
                Open::Stack(iface) => Ok(iface),
                _ => Err("the port's queue is gone".into()),
            }
        }

        /// The port id, for the raw loop (which leaves the queue unused).
        fn port(&self) -> Result<u16, String> {
            match self {
                Open::Queue(q) => Ok(q.port_info().id),
                _ => Err("not a raw queue".into()),
            }
        }
    }

    struct ChildParams {
        server: bool,
        mode: Mode,
        sock: String,
        trips: u64,
        messages: u64,
        size: usize,
        burst: usize,
    }

    pub fn child(role: &str) -> ExitCode {
        let params = (|| {
            Ok::<_, String>(ChildParams {
                server: role == "server",
                mode: Mode::from_name(&std::env::var("INSANE_BENCH_DPDK_MODE").unwrap_or_default()),
                sock: std::env::var("INSANE_BENCH_DPDK_SOCK").map_err(|e| e.to_string())?,
                trips: env_num("INSANE_BENCH_DPDK_TRIPS")?,
                messages: env_num("INSANE_BENCH_DPDK_MESSAGES")?,
                size: env_num("INSANE_BENCH_DPDK_SIZE")? as usize,
                burst: env_num("INSANE_BENCH_DPDK_BURST")? as usize,
            })
        })();
        if role == "cpu" {
            let line = params.and_then(|p| cpu_child(&p));
            return match line {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("FAILED cpu: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        let result = params.and_then(|p| {
            if p.server && p.mode == Mode::Endpoint {
                // The endpoint opens its port itself (through `[dpdk]`).
                let line = endpoint_server(&p).map(|()| "SERVER-DONE".to_string());
                return Ok((line, Open::Empty));
            }
            let args = eal_args(&p);
            Eal::init(&args).map_err(|e| e.to_string())?;
            let mut port = Port::open(
                0,
                &PortConfig {
                    start_attempts: if p.server { 1 } else { 100 },
                    ..PortConfig::default()
                },
            )
            .map_err(|e| e.to_string())?;
            let queue = port.take_queue(0).ok_or("no queue")?;
            if p.server {
                println!("SERVER-READY");
            }
            let start = Instant::now();
            while !queue.link().up {
                if start.elapsed() > Duration::from_secs(30) {
                    return Err("memif link not up after 30 s".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // The port (inside `open`) must stay open, not polled, until the
            // peer has closed its side: closing a memif port makes the
            // peer's PMD unmap shared memory, which crashes an rx_burst
            // running there.
            let mut open = Open::Queue(queue);
            let line = match (p.server, p.mode) {
                (true, Mode::Raw) => raw_server(&p, &open).map(|()| "SERVER-DONE".to_string()),
                (false, Mode::Raw) => raw_client(&p, &open),
                (true, _) => insane_server(&p, &mut open).map(|()| "SERVER-DONE".to_string()),
                (false, _) => insane_client(&p, &mut open),
            };
            Ok((line, open))
        });
        let (ok, _open) = match result {
            Ok((Ok(line), open)) => {
                println!("{line}");
                (true, Some(open))
            }
            Ok((Err(e), open)) => {
                println!("FAILED {role}: {e}");
                (false, Some(open))
            }
            Err(e) => {
                println!("FAILED {role}: {e}");
                (false, None)
            }
        };
        let _ = std::io::stdout().flush();
        // Stay (not polling) until the parent says the peer has closed.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn eal_args(p: &ChildParams) -> Vec<String> {
        let (role, lcore, mac) = if p.server {
            ("server", 0, SERVER_MAC)
        } else {
            ("client", 1, CLIENT_MAC)
        };
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        insane_dpdk::memif_eal_args("insane-bench", role, lcore, &p.sock, &mac)
    }

    fn percentile(sorted: &[u64], q: f64) -> u64 {
        if sorted.is_empty() {
            return 0;
        }
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }

    fn result_line(mut rtts: Vec<u64>, rate: f64) -> String {
        rtts.sort_unstable();
        format!(
            "RESULT p50={} p99={} rate={rate:.0}",
            percentile(&rtts, 0.50),
            percentile(&rtts, 0.99)
        )
    }

    // ---- CPU per round trip: both ends in one thread, net_ring ----

    /// This thread's CPU time since `cpu0`, in ns: not the wall-clock
    /// time, so that time spent waiting for a CPU that other processes
    /// hold (this VM is shared) does not count.
    fn thread_ns_since(cpu0: &CpuTimes) -> f64 {
        CpuTimes::now().since(cpu0).thread.as_nanos() as f64
    }

    /// The `cpu` child: a net_ring pair in this process, the client on
    /// one port and the echo server on the other, polled in turn by this
    /// thread; prints `RESULT cpu=<ns per round trip>`.
    fn cpu_child(p: &ChildParams) -> Result<String, String> {
        let args: Vec<String> = [
            "-l",
            "1",
            "--no-pci",
            "--no-huge",
            "-m",
            "256",
            "--no-telemetry",
            "--no-shconf",
            "--log-level=*:error",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!(
            "--file-prefix=insane-bench-cpu-{}",
            std::process::id()
        )])
        .collect();
        Eal::init(&args).map_err(|e| e.to_string())?;
        let (a, b) = insane_dpdk::ring_pair(1024).map_err(|e| e.to_string())?;
        let open = |id| Port::open(id, &PortConfig::default()).map_err(|e| e.to_string());
        let mut port_a = open(a)?;
        let client = port_a.take_queue(0).ok_or("no queue")?;
        let trips = p.trips * CPU_TRIPS_PER_TRIP;
        if p.mode == Mode::Endpoint {
            // Port b is the endpoint's, opened by its bind.
            let ns = cpu_endpoint(client, b, &args, p.size, trips)?;
            return Ok(format!("RESULT cpu={ns:.1}"));
        }
        let mut port_b = open(b)?;
        let server = port_b.take_queue(0).ok_or("no queue")?;
        let ns = if p.mode == Mode::Raw {
            let pool = raw_pool("raw-cpu")?;
            let (_client, _server) = (client, server);
            cpu_raw(a, b, pool, p.size, trips)?
        } else {
            cpu_insane(client, server, p.size, trips)?
        };
        Ok(format!("RESULT cpu={ns:.1}"))
    }

    /// One client ping (through the client's stack), the server's echo
    /// (received and sent back in the request's mbuf) and the client's
    /// receipt, `trips` times; nanoseconds per round trip. The clock is
    /// read only around the whole loop (the stacks get one `now`).
    fn cpu_insane(
        client: insane_dpdk::Queue,
        server: insane_dpdk::Queue,
        size: usize,
        trips: u64,
    ) -> Result<f64, String> {
        let stack = |queue, mac, ip| {
            DpdkDevice::with_mac(queue, EthernetAddress(mac))
                .map(|d| Interface::new(d, InterfaceConfig::new(Ipv4Cidr::new(ip, 24).into())))
                .map_err(|e| e.to_string())
        };
        let mut c = stack(client, CLIENT_MAC, CLIENT_IP)?;
        let mut s = stack(server, SERVER_MAC, SERVER_IP)?;
        let ce = c.bind(UDP_PORT).map_err(|e| e.to_string())?;
        let se = s.bind(UDP_PORT).map_err(|e| e.to_string())?;
        let to = SocketAddrV4::new(SERVER_IP, UDP_PORT);
        let mut msg = vec![0u8; size];
        msg[0] = TAG_PING;
        let now = Instant::now();
        // One exchange with ARP first (pumped until the echo is back).
        let mut round_trip = |i: u64, polls: u32| -> Result<(), String> {
            ping(&mut c, ce, to, &mut msg, i, now)?;
            for _ in 0..polls {
                s.poll(now);
                while let Some(d) = s.recv_from(se) {
                    let peer = d.peer();
                    let r = s.reuse_rx(d).map_err(|_| "the ring's mbufs are reusable")?;
                    s.send_to(se, peer, r, now)
                        .map_err(|e| format!("echo {i}: {:?}", e.kind))?;
                }
                s.flush();
                c.poll(now);
                if let Some(d) = c.recv_from(ce) {
                    return check_echo(&d, &msg, i);
                }
            }
            Err(format!("no echo for ping {i}"))
        };
        round_trip(0, 10)?;
        for i in 1..=trips / 10 {
            round_trip(i, 1)?;
        }
        let cpu0 = CpuTimes::now();
        for i in 0..trips {
            round_trip(i, 1)?;
        }
        Ok(thread_ns_since(&cpu0) / trips as f64)
    }

    /// The one-thread client's ping `i`: `msg` stamped with `i`, sent
    /// through the client's stack and flushed.
    fn ping(
        c: &mut Interface<DpdkDevice>,
        ce: EndpointId,
        to: SocketAddrV4,
        msg: &mut [u8],
        i: u64,
        now: Instant,
    ) -> Result<(), String> {
        msg[1..9].copy_from_slice(&i.to_le_bytes());
        let mut f = c.alloc_tx().ok_or("client pool empty")?;
        TxFrame::extend_from_slice(&mut f, msg);
        c.send_to(ce, to, f, now)
            .map_err(|e| format!("ping {i}: {:?}", e.kind))?;
        c.flush();
        Ok(())
    }

    /// Whether `echo` carries ping `i` of `msg`.
    fn check_echo(echo: &[u8], msg: &[u8], i: u64) -> Result<(), String> {
        if echo.get(1..9) == Some(&msg[1..9]) {
            Ok(())
        } else {
            Err(format!("echo {i} differs"))
        }
    }

    /// The raw loop's round trip on the same ring pair: the client builds
    /// and sends a frame, the server checks and swaps it back, the client
    /// checks the echo; nanoseconds per round trip.
    fn cpu_raw(
        a: u16,
        b: u16,
        pool: *mut sys::rte_mempool,
        size: usize,
        trips: u64,
    ) -> Result<f64, String> {
        let mut msg = vec![0u8; size];
        msg[0] = TAG_PING;
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); 32];
        let mut echo: Vec<*mut sys::rte_mbuf> = Vec::with_capacity(32);
        let mut round_trip = |i: u64| -> Result<(), String> {
            msg[1..9].copy_from_slice(&i.to_le_bytes());
            // SAFETY: our live pool.
            let m =
                unsafe { raw_frame(pool, CLIENT_MAC, SERVER_MAC, &msg) }.ok_or("raw pool empty")?;
            raw_send_all(a, &mut [m])?;
            // SAFETY: port b is started; room for 32.
            let n = unsafe { sys::insane_rte_eth_rx_burst(b, 0, bufs.as_mut_ptr(), 32) };
            for &m in &bufs[..usize::from(n)] {
                // SAFETY: a received mbuf, ours.
                let frame = unsafe { raw_frame_bytes(m) };
                if raw_valid(frame, SERVER_MAC, SERVER_IP.octets()) {
                    raw_swap(frame);
                    echo.push(m);
                } else {
                    // SAFETY: ours.
                    unsafe { sys::insane_rte_pktmbuf_free(m) };
                }
            }
            raw_send_all(b, &mut echo)?;
            echo.clear();
            // SAFETY: port a is started; room for 32.
            let n = unsafe { sys::insane_rte_eth_rx_burst(a, 0, bufs.as_mut_ptr(), 32) };
            // SAFETY: rx_burst handed over the first `n`, ours.
            if unsafe { raw_take_echo(&bufs[..usize::from(n)], &msg) } {
                Ok(())
            } else {
                Err(format!("echo {i} missing or differs"))
            }
        };
        for i in 0..=trips / 10 {
            round_trip(i)?;
        }
        let cpu0 = CpuTimes::now();
        for i in 0..trips {
            round_trip(i)?;
        }
        Ok(thread_ns_since(&cpu0) / trips as f64)
    }

    // ---- insane-dpdk-endpoint: the public API ----

    /// The host configuration a user writes for DPDK: a `[dpdk]` section
    /// with the EAL arguments, the port and the stack's address.
    fn dpdk_config(eal: &[String], port: u16, ip: Ipv4Addr) -> Result<Config, String> {
        let eal = eal
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Config::from_toml_str(
            &format!("[dpdk]\neal = [{eal}]\nport = {port}\naddress = \"{ip}/24\"\n"),
            "dpdk-rtt",
        )
        .map_err(|e| format!("[dpdk] configuration: {e}"))
    }

    /// A one-core insane runtime on this thread (`pin`: to CPU 0, as the
    /// other servers' EAL pins theirs).
    fn runtime(pin: bool) -> Result<insane::runtime::Runtime, String> {
        insane::runtime::Runtime::builder()
            .cores(1)
            .pin_cores(pin)
            .build()
            .map_err(|e| format!("insane runtime: {e}"))
    }

    /// The server's endpoint, bound as a user binds one for the lowest
    /// latency; an error unless the policy chose DPDK.
    async fn bind_endpoint(config: &Config) -> Result<Endpoint, String> {
        let qos = Qos::builder().critical().best_effort().poll().build();
        let ep = Endpoint::bind_with_config(
            SocketAddr::from((SERVER_IP, UDP_PORT)),
            qos,
            Default::default(),
            config,
        )
        .await
        .map_err(|e| format!("Endpoint::bind_with_config: {e}"))?;
        if ep.driver() != TransportKind::DpdkUdp {
            return Err(format!("the endpoint is not on DPDK: {}", ep.explain()));
        }
        Ok(ep)
    }

    /// The echo server as a user writes it: pings come back as they came;
    /// rate messages are counted, and after `messages` of them the server
    /// sends the time from the first to the last and returns.
    async fn endpoint_echo(ep: &Endpoint, size: usize, messages: u64) -> Result<(), String> {
        let (mut counted, mut first) = (0u64, None::<Instant>);
        loop {
            let msg = ep.recv().await.map_err(|e| format!("recv: {e}"))?;
            match msg.first() {
                Some(&TAG_PING) => {
                    let mut reply = ep.buffer().await;
                    reply
                        .extend_from_slice(&msg)
                        .map_err(|e| format!("echo: {e}"))?;
                    let peer = msg.peer();
                    drop(msg);
                    ep.send_to(reply, peer)
                        .await
                        .map_err(|e| format!("echo: {e}"))?;
                }
                Some(&TAG_RATE) => {
                    let t0 = *first.get_or_insert_with(Instant::now);
                    counted += 1;
                    if counted == messages {
                        let elapsed = t0.elapsed().as_nanos() as u64;
                        let peer = msg.peer();
                        drop(msg);
                        let mut report = vec![0u8; size];
                        report[0] = TAG_REPORT;
                        report[1..9].copy_from_slice(&elapsed.to_le_bytes());
                        let mut r = ep.buffer().await;
                        r.extend_from_slice(&report)
                            .map_err(|e| format!("report: {e}"))?;
                        ep.send_to(r, peer)
                            .await
                            .map_err(|e| format!("report: {e}"))?;
                        return Ok(());
                    }
                }
                _ => return Err("unexpected message".into()),
            }
        }
    }

    /// The memif server on the public API (it opens the port through its
    /// `[dpdk]` section).
    fn endpoint_server(p: &ChildParams) -> Result<(), String> {
        let config = dpdk_config(&eal_args(p), 0, SERVER_IP)?;
        runtime(true)?.block_on(async {
            let ep = bind_endpoint(&config).await?;
            println!("SERVER-READY");
            endpoint_echo(&ep, p.size, p.messages).await?;
            // The report leaves at the stack's next poll of the device,
            // which the spinning core does right away.
            insane::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })
    }

    /// The one-thread CPU measurement of the public API: the endpoint echo
    /// server (a task) on ring port `port`, and the stack client of
    /// [`cpu_insane`] on `client`, in one runtime thread: the client sends
    /// a ping, then yields to the runtime (its tasks, its reactors: the
    /// server's stack) until the echo is back; nanoseconds per round trip.
    fn cpu_endpoint(
        client: insane_dpdk::Queue,
        port: u16,
        eal: &[String],
        size: usize,
        trips: u64,
    ) -> Result<f64, String> {
        let config = dpdk_config(eal, port, SERVER_IP)?;
        runtime(false)?.block_on(async move {
            let ep = std::sync::Arc::new(bind_endpoint(&config).await?);
            let server = {
                let ep = ep.clone();
                insane::spawn(async move { endpoint_echo(&ep, size, u64::MAX).await })
            };
            let mut c = DpdkDevice::with_mac(client, EthernetAddress(CLIENT_MAC))
                .map(|d| {
                    let ip = Ipv4Cidr::new(CLIENT_IP, 24).into();
                    Interface::new(d, InterfaceConfig::new(ip))
                })
                .map_err(|e| e.to_string())?;
            let ce = c.bind(UDP_PORT).map_err(|e| e.to_string())?;
            let to = SocketAddrV4::new(SERVER_IP, UDP_PORT);
            let mut msg = vec![0u8; size];
            msg[0] = TAG_PING;
            let now = Instant::now();
            let mut round_trip = async |i: u64, turns: u32| -> Result<(), String> {
                ping(&mut c, ce, to, &mut msg, i, now)?;
                for _ in 0..turns {
                    insane::task::yield_now().await;
                    c.poll(now);
                    if let Some(d) = c.recv_from(ce) {
                        return check_echo(&d, &msg, i);
                    }
                }
                Err(format!("no echo for ping {i}"))
            };
            // ARP both ways first, then a warm-up; each round trip gets
            // the turns it needs (a bounded number).
            round_trip(0, 10_000).await?;
            for i in 1..=trips / 10 {
                round_trip(i, 1_000).await?;
            }
            let cpu0 = CpuTimes::now();
            for i in 0..trips {
                round_trip(i, 1_000).await?;
            }
            let ns = thread_ns_since(&cpu0) / trips as f64;
            if server.is_finished() {
                return Err("the echo task ended".into());
            }
            Ok(ns)
        })
    }

    // ---- insane: the userspace stack over DpdkDevice ----

    /// The stack's notion of time while busy-polling: read again after a
    /// poll that received something and every 64 idle polls, as an
    /// executor shares one clock read per loop turn among its reactors
    /// (the stack uses `now` only for ARP timers).
    struct Coarse {
        now: Instant,
        idle: u32,
    }

    impl Coarse {
        fn new() -> Self {
            Self::starting(Instant::now())
        }

        fn starting(now: Instant) -> Self {
            Self { now, idle: 0 }
        }

        fn get(&mut self) -> Instant {
            self.now
        }

        /// After a poll: `got` frames were received.
        fn after(&mut self, got: usize) {
            self.idle += 1;
            if got > 0 || self.idle >= 64 {
                self.now = Instant::now();
                self.idle = 0;
            }
        }
    }

    fn insane_server(p: &ChildParams, open: &mut Open) -> Result<(), String> {
        let iface = open.stack(SERVER_IP)?;
        let ep = iface.bind(UDP_PORT).map_err(|e| e.to_string())?;
        let (mut counted, mut first) = (0u64, None::<Instant>);
        let mut idle = 0u64;
        let mut clock = Coarse::new();
        loop {
            let now = clock.get();
            let got = iface.poll(now);
            let mut progress = false;
            while let Some(d) = iface.recv_from(ep) {
                progress = true;
                match d.first() {
                    Some(&TAG_PING) => {
                        // Echo in place: the request's mbuf becomes the
                        // reply (a copy into a fresh one where the device
                        // cannot).
                        let peer = d.peer();
                        let r = match iface.reuse_rx(d) {
                            Ok(r) => r,
                            Err(d) => {
                                let mut r = iface.alloc_tx().ok_or("server pool empty")?;
                                TxFrame::extend_from_slice(&mut r, &d);
                                r
                            }
                        };
                        iface
                            .send_to(ep, peer, r, now)
                            .map_err(|e| format!("echo: {:?}", e.kind))?;
                    }
                    Some(&TAG_RATE) => {
                        let peer = d.peer();
                        drop(d);
                        let t0 = *first.get_or_insert(now);
                        counted += 1;
                        if counted == p.messages {
                            let elapsed = now.duration_since(t0).as_nanos() as u64;
                            let mut r = iface.alloc_tx().ok_or("server pool empty")?;
                            let mut msg = vec![0u8; p.size];
                            msg[0] = TAG_REPORT;
                            msg[1..9].copy_from_slice(&elapsed.to_le_bytes());
                            TxFrame::extend_from_slice(&mut r, &msg);
                            iface
                                .send_to(ep, peer, r, now)
                                .map_err(|e| format!("report: {:?}", e.kind))?;
                            for _ in 0..100_000 {
                                iface.flush();
                                if iface.device().queue().pending() == 0 {
                                    return Ok(());
                                }
                            }
                            return Err("report stuck in the TX batch".into());
                        }
                    }
                    _ => return Err("unexpected message".into()),
                }
            }
            iface.flush();
            // The clock is read at the end of a turn (as an executor reads
            // it once per loop turn), not between a request and its reply.
            clock.after(got);
            idle = if progress { 0 } else { idle + 1 };
            if idle > SPIN_LIMIT {
                return Err(format!("no traffic; rate messages counted {counted}"));
            }
        }
    }

    fn insane_client(p: &ChildParams, open: &mut Open) -> Result<String, String> {
        let iface = open.stack(CLIENT_IP)?;
        let ep = iface.bind(UDP_PORT).map_err(|e| e.to_string())?;
        let server = SocketAddrV4::new(SERVER_IP, UDP_PORT);
        let mut msg = vec![0u8; p.size];
        msg[0] = TAG_PING;
        let mut rtts = Vec::with_capacity(p.trips as usize);
        // Warm-up (ARP resolution included), then the timed round trips.
        let warm = (p.trips / 10).max(100);
        for i in 0..warm + p.trips {
            msg[1..9].copy_from_slice(&i.to_le_bytes());
            let t0 = Instant::now();
            let mut f = iface.alloc_tx().ok_or("client pool empty")?;
            TxFrame::extend_from_slice(&mut f, &msg);
            iface
                .send_to(ep, server, f, t0)
                .map_err(|e| format!("ping {i}: {:?}", e.kind))?;
            iface.flush();
            let mut spins = 0u64;
            // The ping's own clock read serves the first polls (as an
            // executor shares one read per loop turn); no read after the
            // echo has arrived.
            let mut clock = Coarse::starting(t0);
            loop {
                let got = iface.poll(clock.get());
                if let Some(d) = iface.recv_from(ep) {
                    if d.get(1..9) != Some(&msg[1..9]) {
                        return Err(format!("echo {i} differs"));
                    }
                    break;
                }
                clock.after(got);
                spins += 1;
                if spins > SPIN_LIMIT {
                    return Err(format!("no echo for ping {i}"));
                }
            }
            if i >= warm {
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
        }
        // Rate: bursts, never more than one batch outstanding in the queue.
        msg[0] = TAG_RATE;
        let mut sent = 0u64;
        let now = Instant::now();
        while sent < p.messages {
            let mut spins = 0u64;
            while iface.device().queue().pending() > 0 {
                iface.flush();
                spins += 1;
                if spins > SPIN_LIMIT {
                    return Err("TX batch never drains".into());
                }
            }
            let n = (p.messages - sent).min(p.burst as u64);
            for _ in 0..n {
                msg[1..9].copy_from_slice(&sent.to_le_bytes());
                let mut f = iface.alloc_tx().ok_or("client pool empty")?;
                TxFrame::extend_from_slice(&mut f, &msg);
                iface
                    .send_to(ep, server, f, now)
                    .map_err(|e| format!("rate {sent}: {:?}", e.kind))?;
                sent += 1;
            }
            iface.flush();
        }
        let mut spins = 0u64;
        let elapsed = loop {
            iface.poll(Instant::now());
            if let Some(d) = iface.recv_from(ep) {
                if d.first() == Some(&TAG_REPORT) && d.len() >= 9 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&d[1..9]);
                    break u64::from_le_bytes(b);
                }
            }
            spins += 1;
            if spins > SPIN_LIMIT {
                return Err("no report from the server".into());
            }
        };
        Ok(result_line(
            rtts,
            p.messages as f64 / (elapsed.max(1) as f64 / 1e9),
        ))
    }

    // ---- raw: rx_burst/tx_burst on insane-dpdk-sys ----

    /// The raw loop's own port, set up with dpdk-sys calls.
    struct RawPort {
        port: u16,
        pool: *mut sys::rte_mempool,
    }

    fn raw_port(open: &Open) -> Result<RawPort, String> {
        // The port was configured and started by insane-dpdk (same EAL
        // and PMD); the data path below uses only raw calls on it. The
        // Queue stays alive, unused, in `open`, which keeps the port open.
        let port = open.port()?;
        let pool = raw_pool("raw")?;
        Ok(RawPort { port, pool })
    }

    /// The raw loop's own mbuf pool (`tag` and the process id name it).
    fn raw_pool(tag: &str) -> Result<*mut sys::rte_mempool, String> {
        let name = std::ffi::CString::new(format!("{tag}-{}", std::process::id()))
            .map_err(|e| e.to_string())?;
        // SAFETY: the EAL is initialised; the name is NUL-terminated.
        let pool = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                8191,
                256,
                0,
                sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                sys::rte_socket_id() as i32,
            )
        };
        if pool.is_null() {
            return Err("rte_pktmbuf_pool_create failed".into());
        }
        Ok(pool)
    }

    /// Allocates a frame of `len` bytes: Ethernet addresses, then `msg`
    /// at the payload offset.
    ///
    /// # Safety
    /// `pool` is a live pktmbuf pool.
    unsafe fn raw_frame(
        pool: *mut sys::rte_mempool,
        src: [u8; 6],
        dst: [u8; 6],
        msg: &[u8],
    ) -> Option<*mut sys::rte_mbuf> {
        // SAFETY: the caller guarantees the pool.
        let m = unsafe { sys::insane_rte_pktmbuf_alloc(pool) };
        if m.is_null() {
            return None;
        }
        let len = HEADERS + msg.len();
        // SAFETY: a fresh mbuf with 2048 bytes of tailroom (len <= 1442).
        let data = unsafe { sys::insane_rte_pktmbuf_append(m, len as u16) };
        if data.is_null() {
            // SAFETY: ours.
            unsafe { sys::insane_rte_pktmbuf_free(m) };
            return None;
        }
        // SAFETY: `data` points at `len` writable bytes of the mbuf.
        let frame = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
        let (src_ip, dst_ip) = if src == CLIENT_MAC {
            (CLIENT_IP, SERVER_IP)
        } else {
            (SERVER_IP, CLIENT_IP)
        };
        frame[HEADERS..].copy_from_slice(msg);
        raw_headers(frame, src, dst, src_ip.octets(), dst_ip.octets());
        Some(m)
    }

    /// Internet checksum accumulator (RFC 1071): 32 bytes at a time into
    /// four sums of native-endian 32-bit halves, then eight at a time (as
    /// a tuned raw DPDK application's checksum would; the same method as
    /// insane's `stack::checksum`).
    fn raw_sum(mut acc: u64, data: &[u8]) -> u64 {
        let mut sums = [0u64; 4];
        let mut blocks = data.chunks_exact(32);
        for block in &mut blocks {
            for (sum, pair) in sums.iter_mut().zip(block.chunks_exact(8)) {
                let mut w = [0u8; 8];
                w.copy_from_slice(pair);
                let w = u64::from_ne_bytes(w);
                *sum += (w & 0xffff_ffff) + (w >> 32);
            }
        }
        acc += sums.iter().sum::<u64>();
        let mut chunks = blocks.remainder().chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            let w = u64::from_ne_bytes(w);
            acc += (w & 0xffff_ffff) + (w >> 32);
        }
        let mut w = [0u8; 8];
        w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        let w = u64::from_ne_bytes(w);
        acc + (w & 0xffff_ffff) + (w >> 32)
    }

    /// Folds to 16 bits, in network order as a number.
    fn raw_fold(acc: u64) -> u16 {
        let acc = (acc & 0xffff_ffff) + (acc >> 32);
        let acc = (acc & 0xffff_ffff) + (acc >> 32);
        let acc = (acc & 0xffff) + (acc >> 16);
        let acc = (acc & 0xffff) + (acc >> 16);
        u16::from_be_bytes((acc as u16).to_ne_bytes())
    }

    /// Adds a big-endian 16-bit field value to a native-endian sum.
    fn raw_word(acc: u64, w: u16) -> u64 {
        acc + u64::from(u16::from_ne_bytes(w.to_be_bytes()))
    }

    /// Writes Ethernet, IPv4 (checksum) and UDP (checksum over the payload
    /// already in `frame[HEADERS..]`) headers, the bytes insane writes;
    /// header sums from the field values (no read-back of fresh stores).
    fn raw_headers(frame: &mut [u8], src: [u8; 6], dst: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4]) {
        let udp_len = (frame.len() - 34) as u16;
        let addrs = raw_sum(raw_sum(0, &src_ip), &dst_ip);
        let ip_sum = !raw_fold(
            [0x4500, udp_len + 20, 0x4000, 64 << 8 | 17]
                .into_iter()
                .fold(addrs, raw_word),
        );
        let acc = [17, udp_len, UDP_PORT, UDP_PORT, udp_len]
            .into_iter()
            .fold(addrs, raw_word);
        let udp_sum = match !raw_fold(raw_sum(acc, &frame[HEADERS..])) {
            0 => 0xffff,
            s => s,
        };
        frame[..6].copy_from_slice(&dst);
        frame[6..12].copy_from_slice(&src);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip[..12].copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip[2..4].copy_from_slice(&(udp_len + 20).to_be_bytes());
        ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        ip[12..16].copy_from_slice(&src_ip);
        ip[16..20].copy_from_slice(&dst_ip);
        frame[34..36].copy_from_slice(&UDP_PORT.to_be_bytes());
        frame[36..38].copy_from_slice(&UDP_PORT.to_be_bytes());
        frame[38..40].copy_from_slice(&udp_len.to_be_bytes());
        frame[40..42].copy_from_slice(&udp_sum.to_be_bytes());
    }

    /// What a correct UDP responder checks before accepting a frame: our
    /// MAC, IPv4 without options, not a fragment, header checksum, UDP to
    /// our address and port, consistent lengths, UDP checksum.
    fn raw_valid(frame: &[u8], mac: [u8; 6], ip: [u8; 4]) -> bool {
        if frame.len() < HEADERS
            || frame[..6] != mac
            || frame[12..14] != [0x08, 0x00]
            || frame[14] != 0x45
            || frame[20] & 0x3f != 0
            || frame[21] != 0
            || frame[23] != 17
            || frame[30..34] != ip
            || frame[36..38] != UDP_PORT.to_be_bytes()
        {
            return false;
        }
        let ip_len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let udp_len = u16::from_be_bytes([frame[38], frame[39]]);
        if ip_len > frame.len() - 14 || usize::from(udp_len) + 20 != ip_len || udp_len < 8 {
            return false;
        }
        if raw_fold(raw_sum(0, &frame[14..34])) != 0xffff {
            return false;
        }
        if frame[40..42] == [0, 0] {
            return true;
        }
        let mut acc = raw_sum(0, &frame[26..34]);
        acc = raw_sum(acc, &[0, 17]);
        acc = raw_sum(acc, &udp_len.to_be_bytes());
        acc = raw_sum(acc, &frame[34..34 + usize::from(udp_len)]);
        raw_fold(acc) == 0xffff
    }

    /// The client's check of received frames: whether one of them is a
    /// valid echo of `msg` (same sequence bytes); frees them all.
    ///
    /// # Safety
    /// `received` are live single-segment mbufs, ours, not used after.
    unsafe fn raw_take_echo(received: &[*mut sys::rte_mbuf], msg: &[u8]) -> bool {
        let mut ok = false;
        for &m in received {
            // SAFETY: the caller hands the mbufs over; freed right after.
            unsafe {
                ok |= raw_valid(raw_frame_bytes(m), CLIENT_MAC, CLIENT_IP.octets())
                    && raw_payload(m).get(1..9) == Some(&msg[1..9]);
                sys::insane_rte_pktmbuf_free(m);
            }
        }
        ok
    }

    /// Turns a request into its echo in place: swaps MACs, IPv4 addresses
    /// and UDP ports (the checksums stay valid).
    fn raw_swap(frame: &mut [u8]) {
        for i in 0..6 {
            frame.swap(i, i + 6);
        }
        for i in 26..30 {
            frame.swap(i, i + 4);
        }
        for i in 34..36 {
            frame.swap(i, i + 2);
        }
    }

    /// The whole frame of a received mbuf.
    ///
    /// # Safety
    /// `m` is a live single-segment mbuf.
    unsafe fn raw_frame_bytes<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
        // SAFETY: the caller guarantees the mbuf; its data is data_len bytes.
        unsafe {
            let len = usize::from((*m).data_len);
            std::slice::from_raw_parts_mut(sys::insane_rte_pktmbuf_mtod(m).cast::<u8>(), len)
        }
    }

    /// The payload of a raw frame.
    ///
    /// # Safety
    /// `m` is a live single-segment mbuf.
    unsafe fn raw_payload<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
        // SAFETY: the caller guarantees the mbuf; its data is data_len bytes.
        unsafe {
            let len = usize::from((*m).data_len);
            let data = sys::insane_rte_pktmbuf_mtod(m).cast::<u8>();
            let frame = std::slice::from_raw_parts_mut(data, len);
            &mut frame[HEADERS.min(len)..]
        }
    }

    /// Sends all of `bufs` (retrying what the PMD does not take).
    fn raw_send_all(port: u16, bufs: &mut [*mut sys::rte_mbuf]) -> Result<(), String> {
        let mut done = 0usize;
        let mut spins = 0u64;
        while done < bufs.len() {
            // SAFETY: the port is started; the pointers are our mbufs; the
            // PMD takes ownership of the first `n`.
            let n = unsafe {
                sys::insane_rte_eth_tx_burst(
                    port,
                    0,
                    bufs[done..].as_mut_ptr(),
                    (bufs.len() - done) as u16,
                )
            };
            done += usize::from(n);
            spins += 1;
            if spins > SPIN_LIMIT {
                return Err("tx_burst never takes the frames".into());
            }
        }
        Ok(())
    }

    fn raw_server(p: &ChildParams, open: &Open) -> Result<(), String> {
        let raw = raw_port(open)?;
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); 32];
        let (mut counted, mut first) = (0u64, None::<Instant>);
        let mut idle = 0u64;
        let mut echo: Vec<*mut sys::rte_mbuf> = Vec::with_capacity(32);
        loop {
            // SAFETY: the port is started; `bufs` has room for 32.
            let n = unsafe { sys::insane_rte_eth_rx_burst(raw.port, 0, bufs.as_mut_ptr(), 32) };
            if n == 0 {
                idle += 1;
                if idle > SPIN_LIMIT {
                    return Err(format!("no traffic; rate messages counted {counted}"));
                }
                continue;
            }
            idle = 0;
            // Read only for the rate measurement: an echo waits for no
            // clock (as the insane server's).
            let mut clock = None::<Instant>;
            for &m in &bufs[..usize::from(n)] {
                // SAFETY: a received mbuf, ours.
                let frame = unsafe { raw_frame_bytes(m) };
                if !raw_valid(frame, SERVER_MAC, SERVER_IP.octets()) {
                    // SAFETY: ours.
                    unsafe { sys::insane_rte_pktmbuf_free(m) };
                    continue;
                }
                match frame.get(HEADERS) {
                    Some(&TAG_PING) => {
                        raw_swap(frame);
                        echo.push(m);
                    }
                    Some(&TAG_RATE) => {
                        let now = *clock.get_or_insert_with(Instant::now);
                        let t0 = *first.get_or_insert(now);
                        counted += 1;
                        // SAFETY: ours.
                        unsafe { sys::insane_rte_pktmbuf_free(m) };
                        if counted == p.messages {
                            let elapsed = now.duration_since(t0).as_nanos() as u64;
                            let mut msg = vec![0u8; p.size];
                            msg[0] = TAG_REPORT;
                            msg[1..9].copy_from_slice(&elapsed.to_le_bytes());
                            // SAFETY: our live pool.
                            let r = unsafe { raw_frame(raw.pool, SERVER_MAC, CLIENT_MAC, &msg) }
                                .ok_or("raw pool empty")?;
                            echo.push(r);
                        }
                    }
                    _ => {
                        // SAFETY: ours.
                        unsafe { sys::insane_rte_pktmbuf_free(m) };
                    }
                }
            }
            if !echo.is_empty() {
                raw_send_all(raw.port, &mut echo)?;
                echo.clear();
            }
            if counted == p.messages {
                return Ok(());
            }
        }
    }

    fn raw_client(p: &ChildParams, open: &Open) -> Result<String, String> {
        let raw = raw_port(open)?;
        let mut msg = vec![0u8; p.size];
        msg[0] = TAG_PING;
        let mut bufs = [std::ptr::null_mut::<sys::rte_mbuf>(); 32];
        let mut rtts = Vec::with_capacity(p.trips as usize);
        let warm = (p.trips / 10).max(100);
        for i in 0..warm + p.trips {
            msg[1..9].copy_from_slice(&i.to_le_bytes());
            let t0 = Instant::now();
            // SAFETY: our live pool.
            let m = unsafe { raw_frame(raw.pool, CLIENT_MAC, SERVER_MAC, &msg) }
                .ok_or("raw pool empty")?;
            raw_send_all(raw.port, &mut [m])?;
            let mut spins = 0u64;
            loop {
                // SAFETY: the port is started; room for 32.
                let n = unsafe { sys::insane_rte_eth_rx_burst(raw.port, 0, bufs.as_mut_ptr(), 32) };
                if n > 0 {
                    // SAFETY: rx_burst handed over the first `n`, ours.
                    if !unsafe { raw_take_echo(&bufs[..usize::from(n)], &msg) } {
                        return Err(format!("echo {i} differs"));
                    }
                    break;
                }
                spins += 1;
                if spins > SPIN_LIMIT {
                    return Err(format!("no echo for ping {i}"));
                }
            }
            if i >= warm {
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
        }
        msg[0] = TAG_RATE;
        let mut sent = 0u64;
        let mut out: Vec<*mut sys::rte_mbuf> = Vec::with_capacity(p.burst);
        while sent < p.messages {
            let n = (p.messages - sent).min(p.burst as u64);
            for _ in 0..n {
                msg[1..9].copy_from_slice(&sent.to_le_bytes());
                // SAFETY: our live pool.
                let m = unsafe { raw_frame(raw.pool, CLIENT_MAC, SERVER_MAC, &msg) }
                    .ok_or("raw pool empty")?;
                out.push(m);
                sent += 1;
            }
            raw_send_all(raw.port, &mut out)?;
            out.clear();
        }
        let mut spins = 0u64;
        let elapsed = loop {
            // SAFETY: the port is started; room for 32.
            let n = unsafe { sys::insane_rte_eth_rx_burst(raw.port, 0, bufs.as_mut_ptr(), 32) };
            let mut report = None;
            for &m in &bufs[..usize::from(n)] {
                // SAFETY: a received mbuf, ours; freed right after.
                unsafe {
                    let pl = raw_payload(m);
                    if pl.first() == Some(&TAG_REPORT) && pl.len() >= 9 {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&pl[1..9]);
                        report = Some(u64::from_le_bytes(b));
                    }
                    sys::insane_rte_pktmbuf_free(m);
                }
            }
            if let Some(e) = report {
                break e;
            }
            spins += 1;
            if spins > SPIN_LIMIT {
                return Err("no report from the server".into());
            }
        };
        Ok(result_line(
            rtts,
            p.messages as f64 / (elapsed.max(1) as f64 / 1e9),
        ))
    }
}

#[cfg(not(insane_dpdk_available))]
mod imp {
    //! Without the `dpdk` feature or without libdpdk: every cell says how
    //! to get them.

    use std::process::ExitCode;

    use super::{Measured, RunParams};

    pub fn measure(p: &RunParams) -> Result<Measured, String> {
        let _ = (p.mode, p.trips, p.messages, p.size, p.burst);
        Err(why().into())
    }

    pub fn measure_cpu(_: &RunParams) -> Result<f64, String> {
        Err(why().into())
    }

    fn why() -> &'static str {
        if cfg!(feature = "dpdk") {
            "DPDK not available: insane was built without libdpdk (install libdpdk-dev pkg-config libclang-dev and rebuild)"
        } else {
            "insane-bench was built without its `dpdk` feature (cargo run --release -p insane-bench --features dpdk -- dpdk-rtt)"
        }
    }

    pub fn child(role: &str) -> ExitCode {
        println!("FAILED {role}: {}", why());
        ExitCode::FAILURE
    }
}
