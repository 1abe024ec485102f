//! The `qos-mix-isolation` table of the `qos-mix` scenario (issue 19):
//! does a critical flow keep its latency while bulk flows saturate its
//! core, with insane's priority features on and off?
//!
//! One client core (a 1-core io_uring runtime) runs a critical 32 B
//! ping-pong (critical/best-effort/poll endpoint: busy-polled kernel UDP)
//! against an echo server on the other core, next to `n` bulk producers
//! (`n` = 1 or 8, each its own normal/best-effort/low endpoint sending
//! 64 B or 1 KiB datagrams to a sink socket nobody reads, as fast as
//! `send_to().await` lets it). Every task is spawned with plain
//! `spawn_local`, as a new user would: the critical client becomes a
//! critical task by using its critical endpoint.
//!
//! For each load the child measures the critical RTT (p50, p99, p99.9)
//! and the bulk datagrams sent meanwhile, then the bulk producers alone
//! for a fixed time; plus the critical RTT with no bulk at all ("idle").
//! The two columns differ in one switch, `Runtime::builder().priority()`:
//! `insane-priority-on` (critical tasks first, bulk slices; the default)
//! and `insane-priority-off` (one FIFO run queue, the transmit task drains
//! everything per poll: the behaviour before issue 19; the per-core
//! transmit scheduler's strict priority stays in both). Each column runs
//! in its own child process; rounds alternate the two, and each cell is
//! the median over rounds.

use std::cell::Cell as Counter;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use insane::qos::Endpoint;
use insane::runtime::Driver;
use insane::task::spawn_local;

use super::net::{
    Column, Ctx, NetArgs, cells, describe_run, disturbance_notes, each_contestant_process,
    insane_runtime_with,
};
use super::qos_mix::{
    Params, RttRun, SIZE, bulk_qos, critical_qos, filled, rtt_loop, stamp, stamp_of,
    start_qos_server_with,
};
use crate::report::{Report, Unit};

/// The name the measurement is registered under for child processes.
pub const KEY: &str = "qos-mix-isolation";

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

/// What the child measures, per load.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct IsoParams {
    rtt: Params,
    /// How long the bulk producers run alone.
    bulk_alone: Duration,
}

/// One load's numbers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct LoadRun {
    /// Critical RTT p50, p90, p99, p99.9 in ns.
    critical: [f64; 4],
    /// Bulk datagrams per second next to the critical flow.
    bulk_with_critical: f64,
    /// Bulk datagrams per second alone.
    bulk_alone: f64,
}

/// A child's result: one [`LoadRun`] per entry of [`LOADS`].
type IsoRun = Vec<LoadRun>;

/// [`measure`] in a child process.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure)
}

/// Runs the table: `rounds` rounds alternating the two columns.
pub(super) fn report(args: &NetArgs, rtt: Params, columns: &[Priority]) -> Report {
    let c = &args.common;
    let rounds = c.repeats_or(1, 3);
    let p = IsoParams {
        rtt: Params { repeats: 1, ..rtt },
        bulk_alone: Duration::from_millis(if c.quick { 100 } else { 500 }),
    };
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let mut report = Report::new(KEY, &names);
    describe_run(&mut report, args, &rtt.placement, rounds, true);
    report.param("rounds (columns alternate; cells are medians)", rounds);
    report.param("critical round trips per load", p.rtt.trips);
    report.param("critical ping size", format!("{SIZE} B"));
    report.param(
        "bulk alone: run time per load",
        format!("{:?}", p.bulk_alone),
    );
    let mut runs: Vec<Result<Vec<IsoRun>, String>> = vec![Ok(Vec::new()); columns.len()];
    for round in 0..rounds {
        // Alternate who goes first.
        let mut order: Vec<usize> = (0..columns.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let ordered: Vec<Priority> = order.iter().map(|&i| columns[i]).collect();
        let results: Vec<Result<IsoRun, String>> = each_contestant_process(
            &format!("qos-mix isolation, round {}", round + 1),
            KEY,
            &ordered,
            rtt.placement,
            args.limits(),
            &p,
        );
        for (&i, r) in order.iter().zip(results) {
            match (&mut runs[i], r) {
                (Ok(all), Ok(run)) => all.push(run),
                (slot @ Ok(_), Err(e)) => *slot = Err(e),
                (Err(_), _) => {}
            }
        }
    }
    for (l, load) in LOADS.iter().enumerate() {
        let name = load_name(*load);
        for (q, label) in [(0, "p50"), (2, "p99"), (3, "p99.9")] {
            report.row(
                &format!("{name}: critical RTT {label}"),
                Unit::Nanos,
                cells(&runs, |r| r[l].critical[q]),
            );
        }
        if load.is_some() {
            report.row(
                &format!("{name}: bulk next to critical"),
                Unit::Rate { what: "datagrams" },
                cells(&runs, |r| r[l].bulk_with_critical),
            );
            report.row(
                &format!("{name}: bulk alone"),
                Unit::Rate { what: "datagrams" },
                cells(&runs, |r| r[l].bulk_alone),
            );
        }
    }
    report.notes.push(
        "goals (issue 19): critical p99 under bulk <= 2x its idle p99; bulk next to critical \
         >= 80% of bulk alone. Columns differ only in Runtime::builder().priority(on/off)."
            .to_owned(),
    );
    report.ratios_against("insane-priority-on", "insane-priority-off");
    disturbance_notes(&mut report);
    report
}

/// Measures every load for one column (see the module docs).
fn measure(who: Priority, p: IsoParams) -> Result<IsoRun, String> {
    let server = start_qos_server_with(p.rtt, critical_qos(), who.enabled())?;
    let echo = server.addr;
    // Never read: the kernel drops what overflows its receive buffer.
    let sink_sock = StdUdpSocket::bind("127.0.0.1:0").ctx("bind sink")?;
    let sink = sink_sock.local_addr().ctx("sink local_addr")?;
    let rt = insane_runtime_with(Driver::Uring, p.rtt.idle, who.enabled())?;
    let result = rt.block_on(async move {
        let crit = Rc::new(
            Endpoint::bind("127.0.0.1:0", critical_qos())
                .await
                .ctx("bind critical")?,
        );
        let mut bulk = Vec::with_capacity(MAX_FLOWS);
        for _ in 0..MAX_FLOWS {
            let ep = Endpoint::bind("127.0.0.1:0", bulk_qos())
                .await
                .ctx("bind bulk")?;
            bulk.push(Rc::new(ep));
        }
        let mut out = Vec::with_capacity(LOADS.len());
        for load in LOADS {
            let Some(load) = load else {
                let run = critical_run(p.rtt, crit.clone(), echo, None).await?;
                out.push(LoadRun {
                    critical: run.quantiles,
                    bulk_with_critical: 0.0,
                    bulk_alone: 0.0,
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
            // Bulk next to the critical flow.
            let producers = Producers::start(flows, load.size, sink);
            let run = critical_run(p.rtt, crit.clone(), echo, Some(producers.sent.clone())).await?;
            producers.stop().await?;
            out.push(LoadRun {
                critical: run.quantiles,
                bulk_with_critical: run.bulk_rate,
                bulk_alone: alone,
            });
        }
        let stop_msg = filled(&crit, &[0]).await.ctx("fill stop")?;
        crit.send_to(stop_msg, echo).await.ctx("send stop")?;
        Ok::<_, String>(out)
    });
    drop(sink_sock);
    server.join()?;
    result
}

/// The critical ping-pong, in a task of its own (plain `spawn_local`: it
/// becomes critical through its endpoint when priority is on); `sent`
/// counts concurrent bulk datagrams.
async fn critical_run(
    p: Params,
    crit: Rc<Endpoint>,
    echo: SocketAddr,
    sent: Option<Rc<Counter<u64>>>,
) -> Result<RttRun, String> {
    let runs = spawn_local(async move {
        let mut msg = [0x5a_u8; SIZE];
        rtt_loop(p, sent.as_deref(), async |seq| {
            stamp(&mut msg, seq);
            crit.send_to(filled(&crit, &msg).await?, echo).await?;
            let r = crit.recv().await?;
            Ok((r.len(), stamp_of(&r)))
        })
        .await
    })
    .await
    .ctx("critical client task")??;
    runs.into_iter()
        .next()
        .ok_or_else(|| "no timed run".to_owned())
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
                        let buf = filled(&ep, &payload).await?;
                        ep.send_to(buf, sink).await?;
                        sent.set(sent.get() + 1);
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
