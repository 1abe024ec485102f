//! The `runtime` scenario: executor micro-benchmarks run side by side, in
//! the same process, on insane, tokio current-thread (`tokio-ct`) and tokio
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
//!
//! Every measurement builds its own runtime (outside the timed region), runs
//! `--warmup` untimed repetitions, then `--repeats` timed ones, and reports
//! the median. Bodies that run "inside the runtime" run on insane's core 0
//! (`block_on`), on tokio-ct's `block_on` thread, and on a tokio-mt worker
//! (`block_on(tokio::spawn(body))`), so every system runs them as a task.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Common, isolated};
use crate::report::{Cell, Report, Unit};

/// Options of the `runtime` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Pin insane's cores to CPUs (`Runtime::builder().pin_cores(true)`);
    /// tokio's threads are never pinned.
    #[arg(long)]
    pub pin: bool,

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
#[derive(Clone, Copy, Debug)]
struct Params {
    spawn_tasks: u64,
    spawn_batch: usize,
    yields: u64,
    rtt_trips: u64,
    timers: u64,
    timer_batch: usize,
    warmup: usize,
    repeats: usize,
    pin: bool,
    idle: insane::runtime::IdlePolicy,
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
            warmup: args.common.warmup,
            repeats: args.common.repeats(),
            pin: args.pin,
            idle: args.idle.policy(),
        }
    }

    fn runs(&self) -> usize {
        self.warmup + self.repeats
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

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Insane => "insane",
            System::TokioCt => "tokio-ct",
            System::TokioMt => "tokio-mt",
        }
    }
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let p = Params::new(args);
    let timeout = Duration::from_secs(args.common.timeout);
    let names: Vec<&str> = SYSTEMS.iter().map(|s| s.name()).collect();
    let mut report = Report::new("runtime", &names);
    report.param("mode", if args.common.quick { "quick" } else { "full" });
    report.param("warm-up runs", p.warmup);
    report.param("timed runs (median reported)", p.repeats);
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
    report.param("insane cores", "1 (2 for the cross-core round trip)");
    report.param("insane pin_cores", p.pin);
    report.param(
        "insane idle policy",
        format!("{:?} (--idle {:?})", p.idle, args.idle).to_lowercase(),
    );
    report.param("tokio-mt worker threads", 2);
    report.param(
        "available CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    // Runs `f(system, params)` for every system, each isolated.
    fn each<T: Send + 'static>(
        what: &str,
        p: Params,
        timeout: Duration,
        f: fn(System, Params) -> T,
    ) -> Vec<Result<T, String>> {
        say!("{what}:");
        crate::progress::add(SYSTEMS.len());
        SYSTEMS
            .iter()
            .map(|&s| isolated(&format!("{what}/{}", s.name()), timeout, move || f(s, p)))
            .collect()
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
        let spawn = each("spawn+join", p, timeout, spawn_join);
        let n = p.spawn_tasks as f64;
        report.row(
            "spawn+join",
            Unit::Rate { what: "tasks" },
            cells(&spawn, |d| n / d.as_secs_f64()),
        );
        report.row(
            "spawn+join per task",
            Unit::Nanos,
            cells(&spawn, |d| d.as_nanos() as f64 / n),
        );
    }

    if c.selected("yield") {
        let yields = each("yield", p, timeout, yield_loop);
        let total = 2.0 * p.yields as f64;
        report.row(
            "yield (2 tasks)",
            Unit::Rate { what: "yields" },
            cells(&yields, |d| total / d.as_secs_f64()),
        );
    }

    if c.selected("cross-core round trip") {
        let rtt = each("cross-core round trip", p, timeout, round_trip);
        for (i, what) in ["p50", "p99", "mean"].into_iter().enumerate() {
            let row = rtt
                .iter()
                .map(|r| match r {
                    Ok(runs) => Cell::from_samples(runs.iter().map(|s| s[i]).collect()),
                    Err(e) => Cell::failed(e.clone()),
                })
                .collect();
            report.row(&format!("cross-core round trip {what}"), Unit::Nanos, row);
        }
    }

    if c.selected("timer insert+cancel") {
        let timers = each("timer insert+cancel", p, timeout, timer_insert_cancel);
        let n = p.timers as f64;
        report.row(
            "timer insert+cancel",
            Unit::Nanos,
            cells(&timers, |d| d.as_nanos() as f64 / n),
        );
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
    report.notes.extend(args.common.note.iter().cloned());
    if super::abandoned_threads() {
        report.notes.push(
            "a measurement hung and its thread kept running: numbers measured after it are suspect"
                .to_owned(),
        );
    }
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

fn tokio_mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
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
            &tokio_mt(),
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
        System::TokioMt => on_tokio_worker(&tokio_mt(), yield_body(p, tokio_yielder)),
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
        System::TokioMt => {
            on_tokio_worker(&tokio_mt(), rtt_body(p, |i| tokio::spawn(async move { i })))
        }
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
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut timed = Vec::with_capacity(p.repeats);
    for run in 0..p.runs() {
        hist.reset();
        for i in 0..p.rtt_trips {
            let start = Instant::now();
            let v = trip(i).await.expect("round-trip task failed");
            let ns = start.elapsed().as_nanos() as u64;
            assert_eq!(v, i, "wrong round-trip result");
            hist.saturating_record(ns.max(1));
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
        System::TokioMt => on_tokio_worker(&tokio_mt(), tokio_body(p)),
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
// insane

mod insane_side {
    use super::*;
    use insane::runtime::Runtime;

    fn runtime(cores: usize, p: Params) -> Runtime {
        Runtime::builder()
            .cores(cores)
            .pin_cores(p.pin)
            .idle(p.idle)
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

    pub(super) fn timer_insert_cancel(p: Params) -> Vec<Duration> {
        runtime(1, p)
            .block_on(async move { timer_body(p, || insane::time::sleep(Duration::from_secs(1))) })
    }
}
