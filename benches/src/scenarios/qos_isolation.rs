//! The isolation tables of the `qos-mix` scenario (issue 19): does a
//! critical flow keep its latency while bulk flows saturate its core, with
//! insane's priority features on and off? One table per path:
//!
//! * `qos-mix-isolation-udp`: kernel UDP on 127.0.0.1 (the critical endpoint
//!   busy-polls, the bulk ones do not), client and echo server threads of
//!   one process;
//! * `qos-mix-isolation-af_xdp`: insane's userspace stack on AF_XDP over a
//!   veth pair between two network namespaces (created and removed here
//!   for each run; needs root), the client in A, the echo server in B;
//! * `qos-mix-isolation-dpdk-memif`: the stack on DPDK `net_memif` between
//!   two processes (feature `dpdk`; [`memif_pair`]).
//!
//! One client core (a 1-core io_uring runtime) runs a critical 32 B
//! ping-pong (a critical/best-effort/poll endpoint) against an echo server
//! on the other core, next to `n` bulk producers (`n` = 1 or 8, each its
//! own normal/best-effort/poll endpoint on the same path — the policy puts
//! such a flow on the bypass stack when bound on its address — sending
//! 64 B or 1 KiB datagrams to a sink nobody reads, as fast as
//! `send_to().await` lets it). Every task is spawned with plain
//! `spawn_local`, as a new user would: the critical client becomes a
//! critical task by using its critical endpoint. The sink is a kernel
//! socket on loopback and in namespace B (AF_XDP: the XDP program passes
//! its port to the kernel), an endpoint of the echo server's stack on
//! memif.
//!
//! For each load the client measures the bulk producers alone for a
//! fixed time, then the critical RTT (p50, p99, p99.9) and the bulk
//! datagrams sent meanwhile, twice: with the ping-pong back to back (a
//! saturating critical flow, whose own work takes much of the core) and
//! paced at one round trip per [`PACE`] (a request stream); plus both
//! with no bulk at all ("idle"). Every one of these runs lasts the same
//! window (100 ms with `--quick`, 500 ms otherwise), after pings until a
//! first echo came back (a memif link comes up late).
//! A ping whose echo does not come within [`RESEND_AFTER`] (a frame lost
//! on a full ring) is sent again; its round trip counts from the first
//! send, and the resends are noted. The two columns differ in one switch,
//! `Runtime::builder().priority()` on both ends: `insane-priority-on`
//! (critical tasks first, bulk slices; the default) and
//! `insane-priority-off` (one FIFO run queue, the transmit task drains
//! everything per poll: the behaviour before issue 19; the per-core
//! transmit scheduler's strict priority stays in both). Each column runs
//! in processes of its own; rounds alternate the two, and each cell is
//! the median over rounds.

use std::cell::Cell as Counter;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use insane::config::Config;
use insane::qos::policy::TransportKind;
use insane::qos::{Endpoint, Qos};
use insane::runtime::Driver;
use insane::task::{spawn_local, yield_now};
use insane_testhosts::{TestHosts, enter_netns};

use super::memif_pair;
use super::net::{
    Column, Ctx, NetArgs, Placement, cells, describe_run, disturbance_notes,
    each_contestant_process, in_own_process, insane_runtime_with, start_server,
};
use super::qos_mix::{
    Params, RttRun, SIZE, critical_qos, filled, qos_echo, rtt_loop, stamp, stamp_of,
    start_qos_server_with,
};
use super::xdp_rtt::{End, on_fresh_pair, stack_ip, xdp_config};
use crate::report::{Report, Unit};

/// The name the kernel-UDP measurement is registered under for child
/// processes.
pub const KEY: &str = "qos-mix-isolation";
/// The name the AF_XDP measurement is registered under.
pub const XDP_KEY: &str = "qos-mix-isolation-af_xdp";

/// Environment variable that makes this binary a memif child of the
/// DPDK table (its role: `server` or `client`).
const MEMIF_CHILD: &str = "INSANE_BENCH_ISOLATION_MEMIF";
const MEMIF_COLUMN: &str = "INSANE_BENCH_ISOLATION_COLUMN";
const MEMIF_PARAMS: &str = "INSANE_BENCH_ISOLATION_PARAMS";

/// A ping whose echo has not come after this long is sent again.
const RESEND_AFTER: Duration = Duration::from_millis(20);
/// Resends of one ping before the run fails.
const MAX_RESENDS: u32 = 100;

/// Ports on the bypass paths: the echo server, the sink, the critical
/// client, and the first bulk producer (the others follow).
const ECHO_PORT: u16 = 9100;
const SINK_PORT: u16 = 9102;
const CRITICAL_PORT: u16 = 9101;
const FIRST_BULK_PORT: u16 = 9110;

/// A column: the priority switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    On,
    Off,
}

impl Priority {
    fn enabled(self) -> bool {
        self == Priority::On
    }
}

impl Column for Priority {
    const ALL: &'static [Priority] = &[Priority::On, Priority::Off];

    fn name(self) -> &'static str {
        match self {
            Priority::On => "insane-priority-on",
            Priority::Off => "insane-priority-off",
        }
    }
}

/// The path both flows take: one table each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Kernel UDP on loopback.
    Loopback,
    /// The userspace stack on AF_XDP over veth between two namespaces.
    Xdp,
    /// The userspace stack on DPDK memif between two processes.
    Memif,
}

impl Path {
    /// Every path, in report order.
    pub const ALL: [Path; 3] = [Path::Loopback, Path::Xdp, Path::Memif];

    /// The table's name (and report file stem).
    pub fn report_name(self) -> &'static str {
        match self {
            Path::Loopback => "qos-mix-isolation-udp",
            Path::Xdp => XDP_KEY,
            Path::Memif => "qos-mix-isolation-dpdk-memif",
        }
    }

    /// The transports the critical and the bulk endpoints must get.
    fn kinds(self) -> (TransportKind, TransportKind) {
        match self {
            Path::Loopback => (TransportKind::UringUdpBusyPoll, TransportKind::UringUdp),
            Path::Xdp => (TransportKind::XdpUdp, TransportKind::XdpUdp),
            Path::Memif => (TransportKind::DpdkUdp, TransportKind::DpdkUdp),
        }
    }

    /// Why this path cannot be measured here, if it cannot.
    fn unavailable(self) -> Option<String> {
        match self {
            Path::Loopback => None,
            Path::Xdp => TestHosts::available()
                .err()
                .map(|why| format!("no network-namespace test hosts: {why}")),
            Path::Memif => (!cfg!(insane_dpdk_available)).then(|| {
                "insane-bench was built without DPDK (--features dpdk, libdpdk-dev installed)"
                    .to_owned()
            }),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Path::Loopback => {
                "kernel UDP on 127.0.0.1 (critical: io_uring busy-poll UDP; bulk: io_uring UDP), \
                 sink: a kernel socket nobody reads"
            }
            Path::Xdp => {
                "insane's userspace stack on AF_XDP (veth pair between two network namespaces, \
                 copy mode), critical and bulk endpoints on one stack; sink: a kernel socket in \
                 the server's namespace nobody reads"
            }
            Path::Memif => {
                "insane's userspace stack on DPDK net_memif between two processes, critical and \
                 bulk endpoints on one stack; sink: an endpoint of the server's stack nobody \
                 reads"
            }
        }
    }
}

/// The QoS of the bulk flows: normal latency, allowed to poll, so that on
/// a bypass path they share the critical flow's stack.
fn bulk_qos() -> Qos {
    Qos::builder().best_effort().poll().build()
}

/// Bulk flows next to the critical one: how many, and their datagram size.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Load {
    flows: usize,
    size: usize,
}

/// The loads measured, `None` first: the critical flow alone.
const LOADS: [Option<Load>; 5] = [
    None,
    Some(Load { flows: 1, size: 64 }),
    Some(Load {
        flows: 1,
        size: 1024,
    }),
    Some(Load { flows: 8, size: 64 }),
    Some(Load {
        flows: 8,
        size: 1024,
    }),
];

/// Most bulk producers of a load.
const MAX_FLOWS: usize = 8;

fn load_name(load: Option<Load>) -> String {
    match load {
        None => "idle".to_owned(),
        Some(l) => format!("{}x{} B bulk", l.flows, l.size),
    }
}

/// What the client measures, per load.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct IsoParams {
    rtt: Params,
    /// How long the bulk producers run alone.
    bulk_alone: Duration,
}

/// The AF_XDP measurement's job: the parameters and the veth pair's ends
/// (client in `a`, server in `b`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct XdpJob {
    p: IsoParams,
    a: End,
    b: End,
}

/// The paced critical flow's interval: a request stream of 10k round
/// trips per second.
const PACE: Duration = Duration::from_micros(100);

/// One load's numbers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct LoadRun {
    /// Critical RTT p50, p90, p99, p99.9 in ns (back-to-back ping-pong).
    critical: [f64; 4],
    /// Bulk datagrams per second next to it.
    bulk_with_critical: f64,
    /// The same for the critical flow paced at one round trip per
    /// [`PACE`].
    paced: [f64; 4],
    bulk_with_paced: f64,
    /// Bulk datagrams per second alone.
    bulk_alone: f64,
    /// Pings sent again for want of an echo.
    resent: u64,
}

/// A client's result: one [`LoadRun`] per entry of [`LOADS`].
type IsoRun = Vec<LoadRun>;

/// [`measure_loopback`] in a child process.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure_loopback)
}

/// [`measure_xdp`] in a child process.
pub fn xdp_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure_xdp)
}

/// Runs the table of `path`: `rounds` rounds alternating the columns; a
/// path that cannot run here gives no table, only a printed reason.
pub(super) fn report(
    args: &NetArgs,
    rtt: Params,
    columns: &[Priority],
    path: Path,
) -> Option<Report> {
    if let Some(why) = path.unavailable() {
        say!("{}: not measured: {why}", path.report_name());
        return None;
    }
    let c = &args.common;
    let rounds = c.repeats_or(1, 3);
    // Every run of a load lasts as long: the bulk rates next to the
    // critical flow and alone are taken over equal windows (a short one
    // would count this VM's hiccups many times over).
    let window = Duration::from_millis(if c.quick { 100 } else { 500 });
    let p = IsoParams {
        rtt: Params {
            repeats: 1,
            trips: u64::MAX,
            max_run: window,
            ..rtt
        },
        bulk_alone: window,
    };
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let mut report = Report::new(path.report_name(), &names);
    describe_run(&mut report, args, &rtt.placement, rounds, true);
    report.param("path", path.describe());
    crate::rounds::describe(&mut report, rounds);
    report.param("critical ping size", format!("{SIZE} B"));
    report.param(
        "run time per load (bulk alone; critical back to back, paced)",
        format!("{window:?} each"),
    );
    // Alternating rounds (`crate::rounds`): every column once per round,
    // the order rotating; each run in processes (and, on AF_XDP, test
    // hosts) of its own.
    let runs: Vec<Result<Vec<IsoRun>, String>> =
        crate::rounds::alternate(columns, rounds, |who, round| {
            let what = format!("{}, round {}", path.report_name(), round + 1);
            match path {
                Path::Loopback => {
                    each_contestant_process(&what, KEY, &[who], rtt.placement, args.limits(), &p)
                        .pop()
                        .unwrap_or_else(|| Err("no result".to_owned()))
                }
                Path::Xdp => xdp_once(&what, who, p, rtt.placement, args.limits().timeout),
                Path::Memif => memif_once(&what, who, p),
            }
        });
    for (l, load) in LOADS.iter().enumerate() {
        let name = load_name(*load);
        crate::rounds::median_and_best_rows(
            &mut report,
            &format!("{name}: critical RTT p50"),
            Unit::Nanos,
            cells(&runs, |r| r[l].critical[0]),
        );
        for (q, label) in [(2, "p99"), (3, "p99.9")] {
            report.row(
                &format!("{name}: critical RTT {label}"),
                Unit::Nanos,
                cells(&runs, |r| r[l].critical[q]),
            );
        }
        for (q, label) in [(0, "p50"), (2, "p99")] {
            report.row(
                &format!("{name}: paced critical RTT {label}"),
                Unit::Nanos,
                cells(&runs, |r| r[l].paced[q]),
            );
        }
        if load.is_some() {
            report.row(
                &format!("{name}: bulk next to critical"),
                Unit::Rate { what: "datagrams" },
                cells(&runs, |r| r[l].bulk_with_critical),
            );
            report.row(
                &format!("{name}: bulk next to paced critical"),
                Unit::Rate { what: "datagrams" },
                cells(&runs, |r| r[l].bulk_with_paced),
            );
            report.row(
                &format!("{name}: bulk alone"),
                Unit::Rate { what: "datagrams" },
                cells(&runs, |r| r[l].bulk_alone),
            );
        }
    }
    goal_notes(&mut report, columns, &runs);
    report.notes.push(format!(
        "goals (issue 19): critical p99 under bulk <= 2x its idle p99; bulk next to critical \
         >= 80% of bulk alone. Columns differ only in Runtime::builder().priority(on/off), on \
         both ends. The critical flow runs twice per load: back to back (a saturating \
         ping-pong: its own sends and receives take a large share of the core, bulk gets the \
         rest) and paced, one round trip per {PACE:?} (a request stream; the wait between \
         round trips yields and reads the clock)."
    ));
    report.ratios_against("insane-priority-on", "insane-priority-off");
    disturbance_notes(&mut report);
    Some(report)
}

/// Notes with the goals' ratios per column and load (medians over rounds
/// of each round's own ratio), and the resent pings.
fn goal_notes(report: &mut Report, columns: &[Priority], runs: &[Result<Vec<IsoRun>, String>]) {
    for (who, runs) in columns.iter().zip(runs) {
        let Ok(runs) = runs else { continue };
        if runs.is_empty() {
            continue;
        }
        let mut parts = Vec::new();
        for (l, load) in LOADS.iter().enumerate().skip(1) {
            let p99: Vec<f64> = runs
                .iter()
                .map(|r| r[l].critical[2] / r[0].critical[2].max(1.0))
                .collect();
            let paced_p99: Vec<f64> = runs
                .iter()
                .map(|r| r[l].paced[2] / r[0].paced[2].max(1.0))
                .collect();
            let share = |f: fn(&LoadRun) -> f64| -> f64 {
                let v: Vec<f64> = runs
                    .iter()
                    .map(|r| 100.0 * f(&r[l]) / r[l].bulk_alone.max(1.0))
                    .collect();
                crate::report::median(&v)
            };
            parts.push(format!(
                "{}: p99 {:.2}x idle (paced {:.2}x), bulk {:.0}% of alone (next to paced {:.0}%)",
                load_name(*load),
                crate::report::median(&p99),
                crate::report::median(&paced_p99),
                share(|r| r.bulk_with_critical),
                share(|r| r.bulk_with_paced),
            ));
        }
        let resent: u64 = runs.iter().flatten().map(|l| l.resent).sum();
        report.notes.push(format!(
            "{}: {}; pings resent (no echo within {RESEND_AFTER:?}): {resent}.",
            who.name(),
            parts.join("; ")
        ));
    }
}

/// Where the client binds and sends, on one path.
struct Plan {
    path: Path,
    config: Config,
    /// The critical endpoint's address.
    critical: SocketAddr,
    /// The bulk endpoints' addresses, [`MAX_FLOWS`] of them.
    bulk: Vec<SocketAddr>,
    echo: SocketAddr,
    sink: SocketAddr,
}

impl Plan {
    /// A plan on the bypass stack at `local` (fixed ports).
    fn on_stack(
        path: Path,
        config: Config,
        local: Ipv4Addr,
        echo: SocketAddr,
        sink: SocketAddr,
    ) -> Plan {
        Plan {
            path,
            config,
            critical: SocketAddr::from((local, CRITICAL_PORT)),
            bulk: (0..MAX_FLOWS as u16)
                .map(|i| SocketAddr::from((local, FIRST_BULK_PORT + i)))
                .collect(),
            echo,
            sink,
        }
    }
}

/// Binds `qos` at `addr` with `config` and checks the transport is `want`.
async fn bind_checked(
    addr: SocketAddr,
    qos: Qos,
    config: &Config,
    want: TransportKind,
) -> Result<Endpoint, String> {
    let ep = Endpoint::bind_with_config(addr, qos, Default::default(), config)
        .await
        .ctx(&format!("bind {addr}"))?;
    if ep.driver() != want {
        return Err(format!("{addr}: expected {want}, got {}", ep.explain()));
    }
    Ok(ep)
}

/// The client: measures every load for one column on a 1-core runtime of
/// this thread, then stops the echo server.
fn measure_loads(who: Priority, p: IsoParams, plan: Plan) -> Result<IsoRun, String> {
    let rt = insane_runtime_with(Driver::Uring, p.rtt.idle, who.enabled())?;
    rt.block_on(async move {
        let (critical_kind, bulk_kind) = plan.path.kinds();
        let crit = Rc::new(
            bind_checked(plan.critical, critical_qos(), &plan.config, critical_kind).await?,
        );
        let mut bulk = Vec::with_capacity(MAX_FLOWS);
        for &addr in &plan.bulk {
            bulk.push(Rc::new(
                bind_checked(addr, bulk_qos(), &plan.config, bulk_kind).await?,
            ));
        }
        let (echo, sink) = (plan.echo, plan.sink);
        first_echo(&crit, echo).await?;
        let mut out = Vec::with_capacity(LOADS.len());
        let paced = Params {
            pace: Some(PACE),
            ..p.rtt
        };
        for load in LOADS {
            let Some(load) = load else {
                let (run, resent) = critical_run(p.rtt, crit.clone(), echo, None).await?;
                let (slow, resent_paced) = critical_run(paced, crit.clone(), echo, None).await?;
                out.push(LoadRun {
                    critical: run.quantiles,
                    bulk_with_critical: 0.0,
                    paced: slow.quantiles,
                    bulk_with_paced: 0.0,
                    bulk_alone: 0.0,
                    resent: resent + resent_paced,
                });
                continue;
            };
            let flows = &bulk[..load.flows];
            // Bulk alone.
            let producers = Producers::start(flows, load.size, sink);
            let t0 = Instant::now();
            insane::time::sleep(p.bulk_alone).await;
            let alone = producers.sent.get() as f64 / t0.elapsed().as_secs_f64();
            producers.stop().await?;
            // Bulk next to the critical flow, back to back, then paced.
            let mut next_to = Vec::with_capacity(2);
            for rtt in [p.rtt, paced] {
                let producers = Producers::start(flows, load.size, sink);
                let sent = Some(producers.sent.clone());
                next_to.push(critical_run(rtt, crit.clone(), echo, sent).await?);
                producers.stop().await?;
            }
            let [(run, resent), (slow, resent_paced)] =
                <[_; 2]>::try_from(next_to).map_err(|_| "two runs next to bulk".to_owned())?;
            out.push(LoadRun {
                critical: run.quantiles,
                bulk_with_critical: run.bulk_rate,
                paced: slow.quantiles,
                bulk_with_paced: slow.bulk_rate,
                bulk_alone: alone,
                resent: resent + resent_paced,
            });
        }
        send_when_room(&crit, &[0], echo).await.ctx("send stop")?;
        Ok::<_, String>(out)
    })
}

/// How long the path may take to carry a first echo (a memif link comes
/// up a while after both ends started).
const LINK_UP_LIMIT: Duration = Duration::from_secs(30);

/// Pings the echo server until an echo comes back, so that no timed run
/// starts before the path works (link up, addresses resolved).
async fn first_echo(crit: &Endpoint, echo: SocketAddr) -> Result<(), String> {
    const SEQ: u64 = u64::MAX - 1;
    let mut msg = [0x5a_u8; SIZE];
    stamp(&mut msg, SEQ);
    let start = Instant::now();
    while start.elapsed() < LINK_UP_LIMIT {
        send_when_room(crit, &msg, echo).await.ctx("first ping")?;
        let echoed = insane::time::timeout(RESEND_AFTER, async {
            loop {
                if stamp_of(&crit.recv().await?) == SEQ {
                    return io::Result::Ok(());
                }
            }
        })
        .await;
        if let Ok(res) = echoed {
            return res.ctx("first echo");
        }
    }
    Err(format!("no echo from {echo} within {LINK_UP_LIMIT:?}"))
}

/// Kernel UDP on loopback: the echo server on a thread of this process.
fn measure_loopback(who: Priority, p: IsoParams) -> Result<IsoRun, String> {
    let server = start_qos_server_with(p.rtt, critical_qos(), who.enabled())?;
    // Never read: the kernel drops what overflows its receive buffer.
    let sink_sock = StdUdpSocket::bind("127.0.0.1:0").ctx("bind sink")?;
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let plan = Plan {
        path: Path::Loopback,
        config: Config::default(),
        critical: any,
        bulk: vec![any; MAX_FLOWS],
        echo: server.addr,
        sink: sink_sock.local_addr().ctx("sink local_addr")?,
    };
    let result = measure_loads(who, p, plan);
    drop(sink_sock);
    server.join()?;
    result
}

/// One AF_XDP run of `who` in its own process, on fresh test hosts
/// (created here before the child starts, removed after it ended).
fn xdp_once(
    what: &str,
    who: Priority,
    p: IsoParams,
    placement: Placement,
    timeout: Duration,
) -> Result<IsoRun, String> {
    let label = format!("{what}/{}", who.name());
    on_fresh_pair(&label, |a, b| {
        let job = XdpJob { p, a, b };
        in_own_process(&label, XDP_KEY, who, placement.client, timeout, &job)
    })
}

/// AF_XDP: the echo server on a thread in namespace B, the client on this
/// thread in A (`setns` moves only the calling thread).
fn measure_xdp(who: Priority, job: XdpJob) -> Result<IsoRun, String> {
    let XdpJob { p, a, b } = job;
    let server = {
        let b = b.clone();
        start_server("iso-xdp-server", p.rtt.placement.server, move |ready| {
            enter_netns(&b.netns).ctx("server")?;
            // Never read: the kernel drops what overflows its buffer.
            let _sink = StdUdpSocket::bind((b.addr, SINK_PORT)).ctx("bind sink")?;
            let ip = stack_ip(&b, 200);
            let config = xdp_config(&b, ip)?;
            insane_runtime_with(Driver::Uring, p.rtt.idle, who.enabled())?.block_on(async move {
                let addr = SocketAddr::from((ip, ECHO_PORT));
                let ep = bind_checked(addr, critical_qos(), &config, TransportKind::XdpUdp).await?;
                ready.send(addr);
                qos_echo(&ep).await
            })
        })?
    };
    let ip = stack_ip(&a, 100);
    let client = enter_netns(&a.netns).ctx("client").and_then(|()| {
        let plan = Plan::on_stack(
            Path::Xdp,
            xdp_config(&a, ip)?,
            ip,
            server.addr,
            SocketAddr::from((b.addr, SINK_PORT)),
        );
        measure_loads(who, p, plan)
    });
    let served = server.join();
    match (client, served) {
        (Ok(run), Ok(_)) => Ok(run),
        (Err(c), Ok(_)) => Err(format!("client: {c}")),
        (Ok(_), Err(s)) => Err(s),
        (Err(c), Err(s)) => Err(format!("client: {c}; {s}")),
    }
}

/// The memif link's addresses.
const MEMIF_SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 19, 1);
const MEMIF_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 19, 2);
const MEMIF_PREFIX: &str = "insane-bench-isolation";

/// One memif run of `who`: a server and a client process.
fn memif_once(what: &str, who: Priority, p: IsoParams) -> Result<IsoRun, String> {
    let label = format!("{what}/{}", who.name());
    crate::progress::add(1);
    let started = Instant::now();
    let run = serde_json::to_string(&p)
        .ctx("parameters")
        .and_then(|params| {
            memif_pair::run(
                MEMIF_CHILD,
                &[
                    (MEMIF_COLUMN, who.name().to_owned()),
                    (MEMIF_PARAMS, params),
                ],
            )
        })
        .and_then(|line| serde_json::from_str::<IsoRun>(&line).ctx("client result"));
    match &run {
        Ok(_) => say!(
            "  {label:<42} ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => say!("  {label:<42} FAILED: {e}"),
    }
    crate::progress::done();
    run
}

/// When this process is a memif child of the DPDK table, runs it and
/// returns its exit code; otherwise `None`. Called first thing in `main`.
pub fn child_main() -> Option<ExitCode> {
    let role = std::env::var(MEMIF_CHILD).ok()?;
    let run = || -> Result<(), String> {
        let column = std::env::var(MEMIF_COLUMN).ctx(MEMIF_COLUMN)?;
        let who = Priority::from_name(&column).ok_or(format!("no column {column}"))?;
        let p: IsoParams = serde_json::from_str(&std::env::var(MEMIF_PARAMS).ctx(MEMIF_PARAMS)?)
            .ctx("parameters")?;
        let echo = SocketAddr::from((MEMIF_SERVER, ECHO_PORT));
        if role == "server" {
            let config = memif_pair::config(MEMIF_PREFIX, true, MEMIF_SERVER, "02:00:00:00:19:01")?;
            insane_runtime_with(Driver::Uring, p.rtt.idle, who.enabled())?.block_on(async {
                let ep =
                    bind_checked(echo, critical_qos(), &config, TransportKind::DpdkUdp).await?;
                // Never read: its queue fills, the stack drops the rest.
                let sink = SocketAddr::from((MEMIF_SERVER, SINK_PORT));
                let _sink = bind_checked(sink, bulk_qos(), &config, TransportKind::DpdkUdp).await?;
                memif_pair::say_to_parent("READY");
                qos_echo(&ep).await
            })?;
            // Not polling any more; exit when told.
            memif_pair::wait_for_parent();
        } else {
            let config =
                memif_pair::config(MEMIF_PREFIX, false, MEMIF_CLIENT, "02:00:00:00:19:02")?;
            let sink = SocketAddr::from((MEMIF_SERVER, SINK_PORT));
            let plan = Plan::on_stack(Path::Memif, config, MEMIF_CLIENT, echo, sink);
            let run = measure_loads(who, p, plan)?;
            let json = serde_json::to_string(&run).ctx("result")?;
            memif_pair::say_to_parent(&format!("RESULT {json}"));
            // Not polling any more (the runtime is gone); exit when told.
            memif_pair::wait_for_parent();
        }
        Ok(())
    };
    Some(memif_pair::exit_code(run()))
}

/// The critical ping-pong, in a task of its own (plain `spawn_local`: it
/// becomes critical through its endpoint when priority is on); `sent`
/// counts concurrent bulk datagrams. Returns the run and how many pings
/// were sent again for want of an echo.
async fn critical_run(
    p: Params,
    crit: Rc<Endpoint>,
    echo: SocketAddr,
    sent: Option<Rc<Counter<u64>>>,
) -> Result<(RttRun, u64), String> {
    let (runs, resent) = spawn_local(async move {
        let mut msg = [0x5a_u8; SIZE];
        let mut resent = 0_u64;
        let runs = rtt_loop(p, sent.as_deref(), async |seq| {
            stamp(&mut msg, seq);
            for _ in 0..=MAX_RESENDS {
                send_when_room(&crit, &msg, echo).await?;
                // Echoes of earlier sends of this ping, or of pings given
                // up on, are skipped.
                let waited = insane::time::timeout(RESEND_AFTER, async {
                    loop {
                        let r = crit.recv().await?;
                        if stamp_of(&r) == seq {
                            return io::Result::Ok(r.len());
                        }
                    }
                })
                .await;
                match waited {
                    Ok(len) => return Ok((len?, seq)),
                    Err(_) => resent += 1,
                }
            }
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no echo of ping {seq} after {MAX_RESENDS} resends"),
            ))
        })
        .await;
        runs.map(|r| (r, resent))
    })
    .await
    .ctx("critical client task")??;
    let run = runs
        .into_iter()
        .next()
        .ok_or_else(|| "no timed run".to_owned())?;
    Ok((run, resent))
}

/// Yields before giving up on a full device transmit ring.
const MAX_FULL_RING_YIELDS: u32 = 10_000;

/// Sends `bytes` to `to` on `ep`: `Ok(false)` when the device's transmit
/// ring was full (the userspace stack reports that as `WouldBlock`
/// instead of waiting for room; the datagram is not sent).
async fn sent_or_full(ep: &Endpoint, bytes: &[u8], to: SocketAddr) -> io::Result<bool> {
    match ep.send_to(filled(ep, bytes).await?, to).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sends `bytes` to `to` on `ep`, trying again after a yield while the
/// device's transmit ring is full.
async fn send_when_room(ep: &Endpoint, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
    for _ in 0..MAX_FULL_RING_YIELDS {
        if sent_or_full(ep, bytes, to).await? {
            return Ok(());
        }
        yield_now().await;
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the transmit ring stayed full for {MAX_FULL_RING_YIELDS} yields"),
    ))
}

/// Running bulk producers, one task per endpoint.
struct Producers {
    sent: Rc<Counter<u64>>,
    stop: Rc<Counter<bool>>,
    tasks: Vec<insane::task::JoinHandle<io::Result<()>>>,
}

impl Producers {
    /// One producer per endpoint of `flows`: `size`-byte datagrams to
    /// `sink` as fast as `send_to().await` returns.
    fn start(flows: &[Rc<Endpoint>], size: usize, sink: SocketAddr) -> Producers {
        let sent = Rc::new(Counter::new(0_u64));
        let stop = Rc::new(Counter::new(false));
        let tasks = flows
            .iter()
            .map(|ep| {
                let (ep, sent, stop) = (ep.clone(), sent.clone(), stop.clone());
                spawn_local(async move {
                    let payload = vec![0xb0_u8; size];
                    while !stop.get() {
                        if sent_or_full(&ep, &payload, sink).await? {
                            sent.set(sent.get() + 1);
                        } else {
                            yield_now().await;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        Producers { sent, stop, tasks }
    }

    async fn stop(self) -> Result<(), String> {
        self.stop.set(true);
        for t in self.tasks {
            t.await.ctx("bulk producer")?.ctx("bulk producer")?;
        }
        Ok(())
    }
}
