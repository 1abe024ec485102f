//! The `runtime` scenario: executor micro-benchmarks run side by side, in
//! the same run, on insane, tokio current-thread (`tokio-ct`) and tokio
//! multi-thread with 2 workers (`tokio-mt`):
//!
//! 1. **spawn+join** — spawn a batch of tiny tasks (each returns a `u64`),
//!    await every `JoinHandle`, repeat until N tasks ran.
//! 2. **yield** — two tasks each call `yield_now().await` M times,
//!    concurrently.
//! 3. **cross-core round trip** — from core 0, run `async { x }` on core 1
//!    and await its result, M times; latency histogram (p50, p99, mean).
//!    tokio-ct: two current-thread runtimes on two threads, runtime A does
//!    `handle_b.spawn(fut).await`; tokio-mt: `tokio::spawn(fut).await` from
//!    a worker (tokio decides where it runs).
//! 4. **timer insert+cancel** — create a batch of `sleep(1 s)` futures, poll
//!    each once with a no-op waker (registers it in the timer wheel), drop
//!    them all (cancels), repeat until N timers were handled.
//! 5. **mpsc ping-pong** — two tasks of one core (one thread) pass a number
//!    back and forth over two `sync::mpsc` channels of capacity 1, M round
//!    trips: the same-core wake path (a task wakes another task of its own
//!    core) with tokio's channels on every system.
//! 6. **file read** — `fs::read` of a 4 KiB file (in the page cache), M
//!    times; latency histogram (p50, p99, mean). insane's runs as io_uring
//!    requests on the core (`OPENAT`, two `READ`s; the file is closed with
//!    close(2)), tokio's on its blocking thread pool.
//!
//! The systems are measured in alternating rounds ([`crate::rounds`];
//! `--repeats` rounds): per round, every measurement of every system runs
//! in its own child process ([`each_contestant_in_rounds`]), builds its own
//! runtime (outside the timed region), runs `--warmup` untimed repetitions,
//! then one timed one. The report gives the median and the best round. Bodies that run "inside the runtime" run
//! on insane's core 0 (`block_on`), on tokio-ct's `block_on` thread, and on
//! a tokio-mt worker (`block_on(tokio::spawn(body))`), so every system runs
//! them as a task.
//!
//! Threads are pinned like the network scenarios' client and server (see
//! [`Placement`]; `--no-pin` leaves them alone): the child's main thread
//! (insane's core 0, tokio-ct's `block_on` thread) on the first allowed
//! CPU; insane's core 1 and tokio-ct's runtime B on the second; tokio-mt's
//! workers one on each.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;

use super::Common;
use super::net::{Column, Limits, Placement, disturbance_notes, each_contestant_in_rounds};
use crate::report::{Cell, Report, Unit};
use crate::rounds::median_and_best_rows;

/// Options of the `runtime` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Do not pin the threads of the runtimes to CPUs (by default, in every
    /// contestant's process alike, the thread running the benchmark body is
    /// pinned to the first allowed CPU and the runtime's second thread, if
    /// any, to the second).
    #[arg(long)]
    pub no_pin: bool,

    /// insane's idle policy (`Runtime::builder().idle(..)`): `default`
    /// (spin briefly, then park), `park` (sleep at once, like tokio) or
    /// `spin` (never sleep; burns a CPU per core).
    #[arg(long, value_enum, default_value_t = Idle::Default)]
    pub idle: Idle,
}

/// Command-line names for insane's [`insane::runtime::IdlePolicy`].
#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
pub enum Idle {
    /// `IdlePolicy::default()`.
    Default,
    /// `IdlePolicy::Park`.
    Park,
    /// `IdlePolicy::Spin`.
    Spin,
}

impl Idle {
    /// The insane idle policy this name stands for.
    pub fn policy(self) -> insane::runtime::IdlePolicy {
        use insane::runtime::IdlePolicy;
        match self {
            Idle::Default => IdlePolicy::default(),
            Idle::Park => IdlePolicy::Park,
            Idle::Spin => IdlePolicy::Spin,
        }
    }
}

/// Counts for one run, derived from [`Args`].
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Params {
    spawn_tasks: u64,
    spawn_batch: usize,
    yields: u64,
    rtt_trips: u64,
    timers: u64,
    timer_batch: usize,
    pingpongs: u64,
    file_reads: u64,
    warmup: usize,
    repeats: usize,
    placement: Placement,
    idle: Idle,
}

impl Params {
    fn new(args: &Args) -> Params {
        let quick = args.common.quick;
        Params {
            spawn_tasks: if quick { 200_000 } else { 2_000_000 },
            spawn_batch: 1_000,
            yields: if quick { 200_000 } else { 2_000_000 },
            rtt_trips: if quick { 20_000 } else { 50_000 },
            timers: if quick { 200_000 } else { 2_000_000 },
            timer_batch: 10_000,
            pingpongs: if quick { 20_000 } else { 200_000 },
            file_reads: if quick { 2_000 } else { 20_000 },
            warmup: args.common.warmup,
            // One timed repetition per process, one process per round.
            repeats: 1,
            placement: Placement::new(args.no_pin),
            idle: args.idle,
        }
    }

    fn runs(&self) -> usize {
        self.warmup + self.repeats
    }

    /// The CPU of a runtime's `i`-th thread (0: the one running the body):
    /// the client CPU, then the server CPU, alternately.
    fn cpu(&self, i: usize) -> Option<usize> {
        if i % 2 == 0 {
            self.placement.client
        } else {
            self.placement.server
        }
    }
}

/// The compared systems, subject first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Insane,
    TokioCt,
    TokioMt,
}

const SYSTEMS: [System; 3] = [System::Insane, System::TokioCt, System::TokioMt];

impl Column for System {
    const ALL: &'static [System] = &SYSTEMS;

    fn name(self) -> &'static str {
        match self {
            System::Insane => "insane",
            System::TokioCt => "tokio-ct",
            System::TokioMt => "tokio-mt",
        }
    }
}

/// The names this scenario's measurements are registered under for child
/// processes (see [`super::child_main`]), with their child sides.
pub const SPAWN_JOIN: &str = "runtime-spawn-join";
/// See [`SPAWN_JOIN`].
pub const YIELD: &str = "runtime-yield";
/// See [`SPAWN_JOIN`].
pub const ROUND_TRIP: &str = "runtime-cross-core";
/// See [`SPAWN_JOIN`].
pub const TIMERS: &str = "runtime-timers";
/// See [`SPAWN_JOIN`].
pub const MPSC: &str = "runtime-mpsc";
/// See [`SPAWN_JOIN`].
pub const FILE_READ: &str = "runtime-file-read";

/// [`spawn_join`] in a child process: parameters and result as JSON.
pub fn spawn_join_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, |s, p| Ok(spawn_join(s, p)))
}

/// [`yield_loop`] in a child process.
pub fn yield_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, |s, p| Ok(yield_loop(s, p)))
}

/// [`round_trip`] in a child process.
pub fn round_trip_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, |s, p| Ok(round_trip(s, p)))
}

/// [`timer_insert_cancel`] in a child process.
pub fn timers_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, |s, p| Ok(timer_insert_cancel(s, p)))
}

/// [`mpsc_pingpong`] in a child process.
pub fn mpsc_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, |s, p| Ok(mpsc_pingpong(s, p)))
}

/// [`file_read`] in a child process.
pub fn file_read_child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, file_read)
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let p = Params::new(args);
    let rounds = args.common.repeats();
    // No --retries here: a measurement is made once.
    let limits = Limits {
        timeout: Duration::from_secs(args.common.timeout),
        retries: 0,
    };
    let names: Vec<&str> = SYSTEMS.iter().map(|s| s.name()).collect();
    let mut report = Report::new("runtime", &names);
    report.param("mode", if args.common.quick { "quick" } else { "full" });
    report.param("warm-up runs", p.warmup);
    crate::rounds::describe(&mut report, rounds);
    report.param(
        "spawn+join tasks per run",
        format!("{} (batches of {})", p.spawn_tasks, p.spawn_batch),
    );
    report.param("yields per task per run (2 tasks)", p.yields);
    report.param("round trips per run", p.rtt_trips);
    report.param(
        "timers per run",
        format!("{} (batches of {})", p.timers, p.timer_batch),
    );
    report.param("mpsc round trips per run", p.pingpongs);
    report.param(
        "file reads per run",
        format!("{} (fs::read of a {FILE_SIZE} B file)", p.file_reads),
    );
    report.param("insane cores", "1 (2 for the cross-core round trip)");
    report.param(
        "placement",
        match (p.placement.client, p.placement.server) {
            (Some(c), Some(s)) => format!(
                "each system in its own process; body thread (insane core 0, tokio block_on) \
                 on CPU {c}; insane core 1, tokio-ct runtime B on CPU {s}; tokio-mt workers \
                 one on each"
            ),
            _ => "each system in its own process; not pinned".to_owned(),
        },
    );
    report.param(
        "insane idle policy",
        format!("{:?} (--idle {:?})", p.idle.policy(), args.idle).to_lowercase(),
    );
    report.param("tokio-mt worker threads", 2);
    report.param(
        "available CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    // Runs the measurement registered under `key` for every system, in
    // alternating rounds, each in its own process; per system, the timed
    // runs of every round.
    fn each<T: DeserializeOwned>(
        what: &str,
        key: &str,
        p: &Params,
        limits: Limits,
        rounds: usize,
    ) -> Vec<Result<Vec<T>, String>> {
        each_contestant_in_rounds(what, key, &SYSTEMS, p.placement, limits, rounds, p)
    }
    // One cell per system from per-run durations, mapped to the row's unit.
    fn cells(results: &[Result<Vec<Duration>, String>], f: impl Fn(Duration) -> f64) -> Vec<Cell> {
        results
            .iter()
            .map(|r| match r {
                Ok(runs) => Cell::from_samples(runs.iter().map(|&d| f(d)).collect()),
                Err(e) => Cell::failed(e.clone()),
            })
            .collect()
    }

    say!(
        "runtime scenario ({} mode)",
        if args.common.quick { "quick" } else { "full" }
    );

    let c = &args.common;
    if c.selected("spawn+join") {
        let spawn = each::<Duration>("spawn+join", SPAWN_JOIN, &p, limits, rounds);
        let n = p.spawn_tasks as f64;
        median_and_best_rows(
            &mut report,
            "spawn+join",
            Unit::Rate { what: "tasks" },
            cells(&spawn, |d| n / d.as_secs_f64()),
        );
        median_and_best_rows(
            &mut report,
            "spawn+join per task",
            Unit::Nanos,
            cells(&spawn, |d| d.as_nanos() as f64 / n),
        );
    }

    if c.selected("yield") {
        let yields = each::<Duration>("yield", YIELD, &p, limits, rounds);
        let total = 2.0 * p.yields as f64;
        median_and_best_rows(
            &mut report,
            "yield (2 tasks)",
            Unit::Rate { what: "yields" },
            cells(&yields, |d| total / d.as_secs_f64()),
        );
    }

    if c.selected("cross-core round trip") {
        let rtt = each::<Latencies>("cross-core round trip", ROUND_TRIP, &p, limits, rounds);
        latency_rows(&mut report, "cross-core round trip", &rtt);
    }

    if c.selected("timer insert+cancel") {
        let timers = each::<Duration>("timer insert+cancel", TIMERS, &p, limits, rounds);
        let n = p.timers as f64;
        median_and_best_rows(
            &mut report,
            "timer insert+cancel",
            Unit::Nanos,
            cells(&timers, |d| d.as_nanos() as f64 / n),
        );
    }

    if c.selected("mpsc ping-pong") {
        let pp = each::<Duration>("mpsc ping-pong", MPSC, &p, limits, rounds);
        let n = p.pingpongs as f64;
        median_and_best_rows(
            &mut report,
            "mpsc ping-pong per round trip",
            Unit::Nanos,
            cells(&pp, |d| d.as_nanos() as f64 / n),
        );
    }

    if c.selected("file read") {
        let reads = each::<Latencies>("file read", FILE_READ, &p, limits, rounds);
        latency_rows(&mut report, "file read 4 KiB", &reads);
    }

    report.notes.push(
        "spawn+join: spawn a batch of tasks returning a u64, await every JoinHandle; \
         yield: two tasks each awaiting yield_now() concurrently, throughput counts both."
            .to_owned(),
    );
    report.notes.push(
        "cross-core round trip: insane spawn_on(1, fut).await from core 0; tokio-ct \
         handle_b.spawn(fut).await from a second current-thread runtime on another thread; \
         tokio-mt tokio::spawn(fut).await from a worker (tokio picks the worker, usually the same one)."
            .to_owned(),
    );
    report.notes.push(
        "timer insert+cancel: sleep(1 s) polled once with a no-op waker, then dropped; tokio \
         bodies run under tokio::task::unconstrained so the coop budget does not skip registration."
            .to_owned(),
    );
    report.notes.push(
        "mpsc ping-pong: the body task and one spawned task of the same runtime thread \
         exchange a u64 over two tokio::sync::mpsc channels of capacity 1 (insane::sync is \
         tokio::sync); per round trip: two sends, two wake-ups, two receives."
            .to_owned(),
    );
    report.notes.push(
        "file read: fs::read of a 4 KiB file in the page cache; insane (io_uring driver): \
         OPENAT and READ requests on the core; tokio: std::fs::read on its blocking pool."
            .to_owned(),
    );
    report.notes.extend(args.common.note.iter().cloned());
    disturbance_notes(&mut report);
    report
}

// ---------------------------------------------------------------------------
// Runtimes.

fn tokio_ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build tokio current-thread runtime")
}

/// Pins the calling thread to `cpu` (`None`: leaves it alone).
fn pin(cpu: Option<usize>) -> std::io::Result<()> {
    cpu.map_or(Ok(()), insane::runtime::affinity::pin_current_thread)
}

/// A tokio multi-thread runtime with 2 workers, the `k`-th thread it starts
/// pinned to `p.cpu(k)`: one worker on each CPU. A failed pin aborts the
/// process (the measurement's cell then says why).
fn tokio_mt(p: Params) -> tokio::runtime::Runtime {
    let started = std::sync::atomic::AtomicUsize::new(0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .on_thread_start(move || {
            let k = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = pin(p.cpu(k)) {
                eprintln!("tokio-mt thread {k}: {e}");
                std::process::abort();
            }
        })
        .build()
        .expect("build tokio multi-thread runtime")
}

/// Runs `body` as a task on a tokio-mt worker (not on the `block_on` thread).
fn on_tokio_worker<F>(rt: &tokio::runtime::Runtime, body: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move { tokio::spawn(body).await.expect("benchmark task failed") })
}

// ---------------------------------------------------------------------------
// 1. spawn+join

fn spawn_join(system: System, p: Params) -> Vec<Duration> {
    match system {
        System::Insane => insane_side::spawn_join(p),
        System::TokioCt => {
            tokio_ct().block_on(spawn_join_body(p, |i| tokio::spawn(async move { i })))
        }
        System::TokioMt => on_tokio_worker(
            &tokio_mt(p),
            spawn_join_body(p, |i| tokio::spawn(async move { i })),
        ),
    }
}

/// Spawns `p.spawn_tasks` tasks through `spawn` in batches of
/// `p.spawn_batch`, awaiting each batch's handles; one duration per timed run.
async fn spawn_join_body<S, H, E>(p: Params, mut spawn: S) -> Vec<Duration>
where
    S: FnMut(u64) -> H,
    H: Future<Output = Result<u64, E>>,
    E: Debug,
{
    let n = p.spawn_tasks;
    let mut handles = Vec::with_capacity(p.spawn_batch);
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        let start = Instant::now();
        let mut sum = 0u64;
        let mut i = 0;
        while i < n {
            let end = (i + p.spawn_batch as u64).min(n);
            handles.extend((i..end).map(&mut spawn));
            for h in handles.drain(..) {
                sum = sum.wrapping_add(h.await.expect("spawned task failed"));
            }
            i = end;
        }
        let elapsed = start.elapsed();
        assert_eq!(sum, n * (n - 1) / 2, "wrong task results");
        if run >= p.warmup {
            timed.push(elapsed);
        }
    }
    timed
}

// ---------------------------------------------------------------------------
// 2. yield

fn yield_loop(system: System, p: Params) -> Vec<Duration> {
    fn tokio_yielder(m: u64) -> tokio::task::JoinHandle<u64> {
        tokio::spawn(async move {
            for _ in 0..m {
                tokio::task::yield_now().await;
            }
            m
        })
    }
    match system {
        System::Insane => insane_side::yield_loop(p),
        System::TokioCt => tokio_ct().block_on(yield_body(p, tokio_yielder)),
        System::TokioMt => on_tokio_worker(&tokio_mt(p), yield_body(p, tokio_yielder)),
    }
}

/// Spawns two tasks through `spawn_yielder(p.yields)` (each yields that many
/// times) and awaits both; one duration per timed run.
async fn yield_body<S, H, E>(p: Params, mut spawn_yielder: S) -> Vec<Duration>
where
    S: FnMut(u64) -> H,
    H: Future<Output = Result<u64, E>>,
    E: Debug,
{
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        let start = Instant::now();
        let a = spawn_yielder(p.yields);
        let b = spawn_yielder(p.yields);
        let done = a.await.expect("yield task failed") + b.await.expect("yield task failed");
        let elapsed = start.elapsed();
        assert_eq!(done, 2 * p.yields);
        if run >= p.warmup {
            timed.push(elapsed);
        }
    }
    timed
}

// ---------------------------------------------------------------------------
// 5. mpsc ping-pong (same core)

fn mpsc_pingpong(system: System, p: Params) -> Vec<Duration> {
    match system {
        System::Insane => insane_side::mpsc_pingpong(p),
        System::TokioCt => {
            tokio_ct().block_on(pingpong_body(p, |rx, tx| tokio::spawn(echo(rx, tx))))
        }
        System::TokioMt => on_tokio_worker(
            &tokio_mt(p),
            pingpong_body(p, |rx, tx| tokio::spawn(echo(rx, tx))),
        ),
    }
}

/// Sends back every number it receives; returns how many.
async fn echo(mut rx: tokio::sync::mpsc::Receiver<u64>, tx: tokio::sync::mpsc::Sender<u64>) -> u64 {
    let mut n = 0;
    while let Some(v) = rx.recv().await {
        if tx.send(v).await.is_err() {
            break;
        }
        n += 1;
    }
    n
}

/// Spawns an [`echo`] task through `spawn_echo` and makes `p.pingpongs`
/// round trips with it; one duration per timed run.
async fn pingpong_body<S, H, E>(p: Params, mut spawn_echo: S) -> Vec<Duration>
where
    S: FnMut(tokio::sync::mpsc::Receiver<u64>, tokio::sync::mpsc::Sender<u64>) -> H,
    H: Future<Output = Result<u64, E>>,
    E: Debug,
{
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        let (to_echo, echo_rx) = tokio::sync::mpsc::channel(1);
        let (echo_tx, mut from_echo) = tokio::sync::mpsc::channel(1);
        let echo = spawn_echo(echo_rx, echo_tx);
        let start = Instant::now();
        for i in 0..p.pingpongs {
            to_echo.send(i).await.expect("echo task gone");
            let v = from_echo.recv().await.expect("echo task gone");
            assert_eq!(v, i, "wrong echo");
        }
        let elapsed = start.elapsed();
        drop(to_echo);
        assert_eq!(echo.await.expect("echo task failed"), p.pingpongs);
        if run >= p.warmup {
            timed.push(elapsed);
        }
    }
    timed
}

// ---------------------------------------------------------------------------
// 3. cross-core round trip

/// Per timed run: `[p50, p99, mean]` in nanoseconds.
type Latencies = [f64; 3];

fn round_trip(system: System, p: Params) -> Vec<Latencies> {
    match system {
        System::Insane => insane_side::round_trip(p),
        System::TokioCt => {
            let rt_b = tokio_ct();
            let handle_b = rt_b.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread_b = std::thread::Builder::new()
                .name("tokio-ct-b".to_owned())
                .spawn(move || {
                    pin(p.cpu(1)).expect("pin runtime B's thread");
                    rt_b.block_on(async move {
                        let _ = stopped.await;
                    })
                })
                .expect("spawn runtime B thread");
            let out = tokio_ct().block_on(rtt_body(p, move |i| handle_b.spawn(async move { i })));
            let _ = stop.send(());
            thread_b.join().expect("runtime B thread panicked");
            out
        }
        System::TokioMt => on_tokio_worker(
            &tokio_mt(p),
            rtt_body(p, |i| tokio::spawn(async move { i })),
        ),
    }
}

/// Awaits `trip(i)` (which should run `async { i }` somewhere else)
/// `p.rtt_trips` times, timing each.
async fn rtt_body<S, H, E>(p: Params, mut trip: S) -> Vec<Latencies>
where
    S: FnMut(u64) -> H,
    H: Future<Output = Result<u64, E>>,
    E: Debug,
{
    latency_runs(p, p.rtt_trips, |i| {
        let result = trip(i);
        async move {
            let v = result.await.expect("round-trip task failed");
            assert_eq!(v, i, "wrong round-trip result");
        }
    })
    .await
}

/// Runs `one(i)` `count` times per run, timing each; per timed run the
/// latencies' p50, p99 and mean.
async fn latency_runs<F, Fut>(p: Params, count: u64, mut one: F) -> Vec<Latencies>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        hist.reset();
        for i in 0..count {
            let start = Instant::now();
            one(i).await;
            hist.saturating_record((start.elapsed().as_nanos() as u64).max(1));
        }
        if run >= p.warmup {
            timed.push([
                hist.value_at_quantile(0.50) as f64,
                hist.value_at_quantile(0.99) as f64,
                hist.mean(),
            ]);
        }
    }
    timed
}

/// Adds the rows `{name} p50`, `p99` and `mean` of per-run latencies.
fn latency_rows(report: &mut Report, name: &str, results: &[Result<Vec<Latencies>, String>]) {
    for (i, what) in ["p50", "p99", "mean"].into_iter().enumerate() {
        let row = results
            .iter()
            .map(|r| match r {
                Ok(runs) => Cell::from_samples(runs.iter().map(|s| s[i]).collect()),
                Err(e) => Cell::failed(e.clone()),
            })
            .collect();
        let name = format!("{name} {what}");
        if what == "p50" {
            median_and_best_rows(report, &name, Unit::Nanos, row);
        } else {
            report.row(&name, Unit::Nanos, row);
        }
    }
}

// ---------------------------------------------------------------------------
// 4. timer insert+cancel

fn timer_insert_cancel(system: System, p: Params) -> Vec<Duration> {
    fn tokio_body(p: Params) -> impl Future<Output = Vec<Duration>> + Send + 'static {
        // Without `unconstrained`, tokio's coop budget makes `Sleep::poll`
        // return Pending without registering once 128 polls were made.
        tokio::task::unconstrained(async move {
            timer_body(p, || tokio::time::sleep(Duration::from_secs(1)))
        })
    }
    match system {
        System::Insane => insane_side::timer_insert_cancel(p),
        System::TokioCt => tokio_ct().block_on(tokio_body(p)),
        System::TokioMt => on_tokio_worker(&tokio_mt(p), tokio_body(p)),
    }
}

/// Creates `p.timers` timers through `make` in batches of `p.timer_batch`:
/// the batch is created, each polled once (must be pending), then all are
/// dropped. Synchronous on purpose: it must be called from inside a task of
/// the runtime whose timers `make` creates.
fn timer_body<M, S>(p: Params, mut make: M) -> Vec<Duration>
where
    M: FnMut() -> S,
    S: Future,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut live: Vec<S> = Vec::with_capacity(p.timer_batch);
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        let start = Instant::now();
        let mut pending = 0u64;
        let mut done = 0u64;
        while done < p.timers {
            let n = (p.timer_batch as u64).min(p.timers - done);
            live.extend((0..n).map(|_| make()));
            for timer in live.iter_mut() {
                // SAFETY: the timers are pinned only from here until the
                // `clear` below, which drops them in place; `live` is not
                // grown, shrunk or moved in between, so no pinned timer moves.
                let timer = unsafe { Pin::new_unchecked(timer) };
                if timer.poll(&mut cx).is_pending() {
                    pending += 1;
                }
            }
            live.clear();
            done += n;
        }
        let elapsed = start.elapsed();
        assert_eq!(pending, p.timers, "a 1 s sleep completed immediately");
        if run >= p.warmup {
            timed.push(elapsed);
        }
    }
    timed
}

// ---------------------------------------------------------------------------
// 6. file read

/// Bytes of the file [`file_read`] reads.
const FILE_SIZE: usize = 4096;

/// A [`FILE_SIZE`] file of this process, removed on drop.
struct ReadFile(std::path::PathBuf);

impl ReadFile {
    fn new() -> Result<ReadFile, String> {
        let path = std::env::temp_dir().join(format!("insane-bench-read-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; FILE_SIZE])
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(ReadFile(path))
    }
}

impl Drop for ReadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn file_read(system: System, p: Params) -> Result<Vec<Latencies>, String> {
    let file = ReadFile::new()?;
    let path = file.0.clone();
    Ok(match system {
        System::Insane => insane_side::file_read(p, path),
        System::TokioCt => tokio_ct().block_on(file_read_body(p, path, tokio::fs::read)),
        System::TokioMt => on_tokio_worker(&tokio_mt(p), file_read_body(p, path, tokio::fs::read)),
    })
}

/// Reads the file at `path` with `read` `p.file_reads` times, timing each.
async fn file_read_body<R, F>(p: Params, path: std::path::PathBuf, mut read: R) -> Vec<Latencies>
where
    R: FnMut(std::path::PathBuf) -> F,
    F: Future<Output = std::io::Result<Vec<u8>>>,
{
    latency_runs(p, p.file_reads, |_| {
        let bytes = read(path.clone());
        async move {
            let bytes = bytes.await.expect("file read failed");
            assert_eq!(bytes.len(), FILE_SIZE, "short file read");
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// insane

mod insane_side {
    use super::*;
    use insane::runtime::Runtime;

    /// `cores` cores, core `i` pinned to `p.cpu(i)` (by a hook: the
    /// builder's `pin_cores` would read the allowed CPUs from the calling
    /// thread, already pinned to the first CPU).
    fn runtime(cores: usize, p: Params) -> Runtime {
        Runtime::builder()
            .cores(cores)
            .pin_cores(false)
            .on_core_start(std::sync::Arc::new(move |i| pin(p.cpu(i))))
            .idle(p.idle.policy())
            .build()
            .expect("build insane runtime")
    }

    pub(super) fn spawn_join(p: Params) -> Vec<Duration> {
        runtime(1, p).block_on(spawn_join_body(p, |i| insane::spawn(async move { i })))
    }

    pub(super) fn yield_loop(p: Params) -> Vec<Duration> {
        runtime(1, p).block_on(yield_body(p, |m| {
            insane::spawn(async move {
                for _ in 0..m {
                    insane::task::yield_now().await;
                }
                m
            })
        }))
    }

    pub(super) fn round_trip(p: Params) -> Vec<Latencies> {
        runtime(2, p).block_on(rtt_body(p, |i| insane::task::spawn_on(1, async move { i })))
    }

    pub(super) fn mpsc_pingpong(p: Params) -> Vec<Duration> {
        runtime(1, p).block_on(pingpong_body(p, |rx, tx| insane::spawn(echo(rx, tx))))
    }

    pub(super) fn file_read(p: Params, path: std::path::PathBuf) -> Vec<Latencies> {
        runtime(1, p).block_on(file_read_body(p, path, insane::fs::read))
    }

    pub(super) fn timer_insert_cancel(p: Params) -> Vec<Duration> {
        runtime(1, p)
            .block_on(async move { timer_body(p, || insane::time::sleep(Duration::from_secs(1))) })
    }
}
