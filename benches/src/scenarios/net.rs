//! What the network scenarios (`udp-rtt`, `tcp-echo`, `tcp-stream`,
//! `qos-mix`) share: their command-line options ([`NetArgs`]), the
//! [`Contestant`]s, where client and server threads run ([`Placement`]),
//! the server thread plumbing ([`start_server`]), CPU-time snapshots
//! ([`CpuTimes`]) and the runtimes each contestant builds; and how every
//! scenario that compares contestants side by side (these, `runtime` and
//! `xdp-rtt`) measures each one in a process of its own.
//!
//! [`each_contestant_in_rounds`] runs every measurement in its own child
//! process, in alternating rounds ([`crate::rounds`];
//! [`each_contestant_process`] makes one round, [`in_own_process`] one
//! measurement): this binary re-executed as
//! `insane-bench __run KEY CONTESTANT CPU PARAMS-JSON` ([`child_main`]),
//! whose main thread becomes the client thread (pinned to the client CPU)
//! and starts the server on a second thread (pinned to the server CPU); it
//! prints its result as JSON. A panic, an error, a crash or a hang (the
//! child is killed after `--timeout`) on either side turns into a `FAILED`
//! cell. Network scenarios talk over 127.0.0.1 only (`xdp-rtt`: over a
//! veth pair between network namespaces).

use insane::runtime::affinity;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{OnceLock, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Common;
use super::runtime::Idle;
use crate::report::{Cdf, Cell, Report, Unit};

/// Options of every network scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct NetArgs {
    #[command(flatten)]
    pub common: Common,

    /// insane's idle policy (`Runtime::builder().idle(..)`): `default`
    /// (spin briefly, then park), `park` (sleep at once, like tokio) or
    /// `spin` (never sleep; burns a CPU per core).
    #[arg(long, value_enum, default_value_t = Idle::Default)]
    pub idle: Idle,

    /// Do not pin the client and server threads to CPUs (by default the
    /// client runs on the first allowed CPU and the server on the second,
    /// for every contestant alike).
    #[arg(long)]
    pub no_pin: bool,

    /// Measure only these contestants (repeatable, by column name, e.g.
    /// `--contestant insane-uring --contestant tokio-ct`); default: all.
    #[arg(long = "contestant")]
    pub contestants: Vec<String>,

    /// Measure a contestant again, up to this many times, when other
    /// processes used the CPUs meanwhile (the least disturbed attempt is
    /// reported).
    #[arg(long, default_value_t = 2)]
    pub retries: usize,
}

/// A system measured by the network scenarios. Each scenario lists the
/// ones it runs; the order of that list is the column order.
///
/// Extension points: a new contestant is a variant here plus one arm in
/// each scenario's `measure` function (server side, and client side where
/// the scenario runs the contestant on both ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contestant {
    /// insane's tokio-compatible sockets on the io_uring driver.
    InsaneUring,
    /// insane's owned-buffer (completion) path on io_uring:
    /// `read_owned`/`write_all_owned`/`recv_from_owned`/`send_to_owned`.
    InsaneUringOwned,
    /// insane's tokio-compatible sockets on the epoll driver.
    InsaneEpoll,
    /// insane's QoS [`Endpoint`](insane::qos::Endpoint) for the lowest
    /// latency (`latency = critical, best-effort, resources = poll`:
    /// kernel UDP busy-polled on io_uring), written as a user writes it:
    /// `recv().await`, `buffer().await`, `extend_from_slice`,
    /// `send_to().await`.
    InsaneEndpoint,
    /// tokio, a current-thread runtime per side.
    TokioCt,
    /// std sockets, blocking calls on plain threads (for TCP echo: a
    /// thread per connection).
    StdBlocking,
    /// std sockets in non-blocking mode, spinning on `WouldBlock`
    /// (kernel baseline without any wake-up; burns both CPUs).
    StdBusyPoll,
    /// monoio (thread-per-core, io_uring driver, owned-buffer I/O), a
    /// 1-core runtime per side.
    Monoio,
    /// glommio (thread-per-core, io_uring), a 1-core `LocalExecutor` per
    /// side, not bound by glommio itself (the thread is pinned like the
    /// others').
    Glommio,
}

impl Contestant {
    /// Column name.
    pub fn name(self) -> &'static str {
        match self {
            Contestant::InsaneUring => "insane-uring",
            Contestant::InsaneUringOwned => "insane-uring-owned",
            Contestant::InsaneEpoll => "insane-epoll",
            Contestant::InsaneEndpoint => "insane-endpoint",
            Contestant::TokioCt => "tokio-ct",
            Contestant::StdBlocking => "std-blocking",
            Contestant::StdBusyPoll => "std-busy-poll",
            Contestant::Monoio => "monoio",
            Contestant::Glommio => "glommio",
        }
    }

    /// `Err(reason)` when this contestant cannot run on this host (the
    /// scenario then leaves its column out and says why in the notes):
    /// monoio and glommio are probed once by building a runtime on a
    /// scratch thread (io_uring may be disabled, glommio may fail to
    /// allocate its locked I/O memory).
    pub fn available(self) -> Result<(), String> {
        static MONOIO: OnceLock<Result<(), String>> = OnceLock::new();
        static GLOMMIO: OnceLock<Result<(), String>> = OnceLock::new();
        let probe = |f: fn() -> Result<(), String>| {
            std::thread::Builder::new()
                .name("runtime-probe".to_owned())
                .spawn(f)
                .ctx("spawn probe thread")?
                .join()
                .map_err(|p| format!("panicked: {}", super::panic_message(&*p)))?
        };
        match self {
            Contestant::InsaneUring
            | Contestant::InsaneUringOwned
            | Contestant::InsaneEpoll
            | Contestant::InsaneEndpoint
            | Contestant::TokioCt
            | Contestant::StdBlocking
            | Contestant::StdBusyPoll => Ok(()),
            Contestant::Monoio => MONOIO
                .get_or_init(|| probe(|| monoio_runtime().map(drop)))
                .clone(),
            Contestant::Glommio => GLOMMIO
                .get_or_init(|| probe(|| glommio_executor().map(drop)))
                .clone(),
        }
    }

    /// The insane driver this contestant uses, if it is an insane one.
    pub fn insane_driver(self) -> Option<insane::runtime::Driver> {
        use insane::runtime::Driver;
        match self {
            Contestant::InsaneUring | Contestant::InsaneUringOwned | Contestant::InsaneEndpoint => {
                Some(Driver::Uring)
            }
            Contestant::InsaneEpoll => Some(Driver::Epoll),
            _ => None,
        }
    }
}

/// A column of a scenario's table that [`each_contestant_process`] and
/// [`latency_cdf`] can measure: a [`Contestant`], or a scenario's own kind
/// of column (e.g. the QoS classes of `qos-mix`, the systems of `runtime`).
/// A child process finds its column by name ([`Column::from_name`]).
pub trait Column: Copy + Send + 'static {
    /// Every column of this kind.
    const ALL: &'static [Self];

    /// Column name.
    fn name(self) -> &'static str;

    /// The column whose name is `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl Column for Contestant {
    const ALL: &'static [Contestant] = &[
        Contestant::InsaneUring,
        Contestant::InsaneUringOwned,
        Contestant::InsaneEpoll,
        Contestant::InsaneEndpoint,
        Contestant::TokioCt,
        Contestant::StdBlocking,
        Contestant::StdBusyPoll,
        Contestant::Monoio,
        Contestant::Glommio,
    ];

    fn name(self) -> &'static str {
        Contestant::name(self)
    }
}

/// Keeps the contestants of `wanted` that were selected (`--contestant`)
/// and can run here; for those that cannot, adds a note to `notes` saying
/// why they are missing.
pub fn available(
    args: &NetArgs,
    wanted: &[Contestant],
    notes: &mut Vec<String>,
) -> Vec<Contestant> {
    let mut out = Vec::new();
    let selected = |c: Contestant| {
        args.contestants.is_empty() || args.contestants.iter().any(|n| n == c.name())
    };
    for &c in wanted.iter().filter(|&&c| selected(c)) {
        match c.available() {
            Ok(()) => out.push(c),
            Err(why) => {
                say!("{} skipped: {why}", c.name());
                notes.push(format!("{} not measured (skipped): {why}", c.name()));
            }
        }
    }
    out
}

/// Which CPU the client and the server threads are pinned to (`None`: not
/// pinned).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    pub client: Option<usize>,
    pub server: Option<usize>,
}

impl Placement {
    /// Client on the first allowed CPU, server on the second, unless
    /// `no_pin` or fewer than 2 CPUs are allowed.
    pub fn new(no_pin: bool) -> Placement {
        let cpus = affinity::allowed_cpus().unwrap_or_default();
        if no_pin || cpus.len() < 2 {
            Placement {
                client: None,
                server: None,
            }
        } else {
            Placement {
                client: Some(cpus[0]),
                server: Some(cpus[1]),
            }
        }
    }

    /// E.g. `"client on CPU 0, server on CPU 1"`.
    pub fn describe(&self) -> String {
        match (self.client, self.server) {
            (Some(c), Some(s)) => format!("client thread on CPU {c}, server thread(s) on CPU {s}"),
            _ => "not pinned".to_owned(),
        }
    }
}

/// Pins the calling thread to `cpu` (threads it spawns inherit it); does
/// nothing for `None`.
pub fn pin_current_thread(cpu: Option<usize>) -> Result<(), String> {
    match cpu {
        Some(cpu) => affinity::pin_current_thread(cpu).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// CPU time (user + system) consumed so far, from `getrusage`.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    /// The whole process (every thread, live or finished).
    pub process: Duration,
    /// The calling thread only.
    pub thread: Duration,
}

impl CpuTimes {
    /// A snapshot now.
    pub fn now() -> CpuTimes {
        CpuTimes {
            process: rusage(libc::RUSAGE_SELF),
            thread: rusage(libc::RUSAGE_THREAD),
        }
    }

    /// What was consumed between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            process: self.process.saturating_sub(earlier.process),
            thread: self.thread.saturating_sub(earlier.thread),
        }
    }
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live rusage the kernel fills in.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A latency histogram in nanoseconds (1 ns to 60 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// `[p50, p90, p99, p99.9]` of `h`, in its unit.
pub fn quantiles(h: &Histogram<u64>) -> [f64; 4] {
    [0.50, 0.90, 0.99, 0.999].map(|q| h.value_at_quantile(q) as f64)
}

/// The distribution of `h` as `[value, cumulative fraction]` points for a
/// CDF plot: every percentile up to 99, then finer steps into the tail, and
/// the maximum (about 130 points, whatever the sample count).
pub fn cdf_points(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..=99).map(|i| f64::from(i) / 100.0).collect();
    qs.extend((1..=9).map(|i| 0.99 + f64::from(i) / 1000.0));
    qs.extend((1..=9).map(|i| 0.999 + f64::from(i) / 10_000.0));
    qs.extend([0.9999, 0.99999]);
    let mut points: Vec<[f64; 2]> = qs
        .iter()
        .map(|&q| [h.value_at_quantile(q) as f64, q])
        .collect();
    points.push([h.max() as f64, 1.0]);
    points
}

/// A [`Cdf`] titled `title` with one series per contestant that has timed
/// runs: the distribution of its run with the median p50 (`cdf` and `p50`
/// read a run's points and p50).
pub fn latency_cdf<C: Column, R>(
    title: &str,
    contestants: &[C],
    results: &[Result<Vec<R>, String>],
    cdf: impl Fn(&R) -> &[[f64; 2]],
    p50: impl Fn(&R) -> f64,
) -> Cdf {
    let series = contestants
        .iter()
        .zip(results)
        .filter_map(|(who, r)| {
            let mut runs: Vec<&R> = r.as_ref().ok()?.iter().collect();
            runs.sort_by(|a, b| p50(a).total_cmp(&p50(b)));
            let run = runs.get(runs.len() / 2)?;
            let points = cdf(run);
            (!points.is_empty()).then(|| (who.name().to_owned(), points.to_vec()))
        })
        .collect();
    Cdf {
        title: title.to_owned(),
        series,
    }
}

/// Names of the [`quantiles`] entries.
pub const QUANTILE_NAMES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];

/// Adds context to an error and makes it a `String`.
pub trait Ctx<T> {
    /// `Err(e)` becomes `Err("{what}: {e}")`.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// A 1-core insane runtime on the calling thread with `driver`.
pub fn insane_runtime(
    driver: insane::runtime::Driver,
    idle: Idle,
) -> Result<insane::runtime::Runtime, String> {
    insane_runtime_with(driver, idle, true)
}

/// [`insane_runtime`] with the executor's latency priority on or off
/// (`Builder::priority`).
pub fn insane_runtime_with(
    driver: insane::runtime::Driver,
    idle: Idle,
    priority: bool,
) -> Result<insane::runtime::Runtime, String> {
    insane::runtime::Runtime::builder()
        .cores(1)
        .pin_cores(false)
        .driver(driver)
        .idle(idle.policy())
        .priority(priority)
        .build()
        .ctx(&format!("build insane runtime ({driver})"))
}

/// A tokio current-thread runtime with I/O and timers.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx("build tokio runtime")
}

/// A 1-core monoio runtime on the calling thread, io_uring driver (no
/// fallback: monoio's legacy epoll driver would not be monoio as
/// benchmarked), no timer.
pub fn monoio_runtime() -> Result<monoio::Runtime<monoio::IoUringDriver>, String> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .ctx("build monoio runtime (io_uring)")
}

/// A glommio `LocalExecutor` on the calling thread. `Placement::Unbound`:
/// glommio does not change the thread's CPU affinity, so the thread stays
/// where the harness pinned it, like every other contestant's.
pub fn glommio_executor() -> Result<glommio::LocalExecutor, String> {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("glommio-bench")
        .make()
        .ctx("build glommio executor")
}

/// Runs a future that never returns `Pending` (the async measurement loop
/// driven by blocking or spinning std calls) to completion.
pub fn run_sync<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a blocking contestant's future returned Pending"),
    }
}

/// Hands the server's listening address to the client.
pub struct Ready(mpsc::SyncSender<SocketAddr>);

impl Ready {
    /// Tells the client where to connect.
    pub fn send(self, addr: SocketAddr) {
        let _ = self.0.send(addr);
    }
}

/// A server running on its own (pinned) thread.
pub struct Server<T> {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: JoinHandle<Result<T, String>>,
}

impl<T> Server<T> {
    /// Waits for the server thread and returns its result.
    pub fn join(self) -> Result<T, String> {
        join_server(self.handle)
    }
}

fn join_server<T>(handle: JoinHandle<Result<T, String>>) -> Result<T, String> {
    match handle.join() {
        Ok(r) => r.map_err(|e| format!("server: {e}")),
        Err(p) => Err(format!("server panicked: {}", super::panic_message(&*p))),
    }
}

/// Starts `serve` on a new thread pinned to `cpu` and waits (at most 30 s)
/// for it to report its address through [`Ready`]. If the server fails
/// before that, its error is returned.
pub fn start_server<T, F>(name: &str, cpu: Option<usize>, serve: F) -> Result<Server<T>, String>
where
    T: Send + 'static,
    F: FnOnce(Ready) -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            pin_current_thread(cpu)?;
            serve(Ready(tx))
        })
        .ctx("spawn server thread")?;
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok(Server { addr, handle }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(join_server(handle)
            .err()
            .unwrap_or_else(|| "server finished without reporting an address".to_owned())),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err("server did not report an address within 30 s".to_owned())
        }
    }
}

/// How long one measurement may take and how often one that other
/// processes disturbed is repeated (see [`each_contestant_process`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The child process is killed (and the cell `FAILED`) after this.
    pub timeout: Duration,
    /// Measure again up to this many times when other processes used the
    /// CPUs meanwhile.
    pub retries: usize,
}

impl NetArgs {
    /// `--timeout` and `--retries`.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_secs(self.common.timeout),
            retries: self.retries,
        }
    }
}

/// Runs the measurement registered under `key` (see [`child_main`]) for
/// every contestant, each in its own child process: this binary again, as
/// `insane-bench __run KEY CONTESTANT CPU PARAMS` (see [`in_own_process`]),
/// which pins its main thread to the client CPU of `placement`, runs the
/// measurement with `params` and prints its result as JSON. A crash
/// (signal, abort), an exit without a result or a hang past
/// `limits.timeout` (the child is then killed) becomes a `FAILED` cell;
/// nothing of a contestant stays behind to disturb the next one, and
/// getrusage's process CPU time is the contestant's alone.
///
/// A measurement during which other processes used the CPUs (see
/// [`ForeignLoad`]) is repeated up to `limits.retries` times; the least
/// disturbed attempt is kept, and a note names any disturbance left (taken
/// into the report by [`finish`] or [`disturbance_notes`]).
pub fn each_contestant_process<C, P, T>(
    what: &str,
    key: &str,
    contestants: &[C],
    placement: Placement,
    limits: Limits,
    params: &P,
) -> Vec<Result<T, String>>
where
    C: Column,
    P: Serialize,
    T: DeserializeOwned,
{
    contestant_rounds(what, key, contestants, placement, limits, 1, params)
        .into_iter()
        .map(|r| r.and_then(|mut runs| runs.pop().ok_or_else(|| "not measured".to_owned())))
        .collect()
}

/// One measurement in its own child process, as in
/// [`each_contestant_process`] but without its loop over contestants and
/// retries: for a scenario that prepares something per measurement in
/// this process (`xdp-rtt` creates fresh network namespaces for each run
/// and removes them after, whatever became of the child). The child's
/// main thread is pinned to `cpu`; `label` names it in the log.
pub fn in_own_process<C, P, T>(
    label: &str,
    key: &str,
    who: C,
    cpu: Option<usize>,
    timeout: Duration,
    params: &P,
) -> Result<T, String>
where
    C: Column,
    P: Serialize,
    T: DeserializeOwned,
{
    let params = serde_json::to_string(params).ctx("cannot serialise the parameters")?;
    child_process(label, timeout, key, who.name(), cpu, &params)
}

/// Runs `measure(label)`, again up to `retries` times while other
/// processes used the CPUs meanwhile (see [`ForeignLoad`]); keeps the
/// least disturbed attempt and leaves a note when even that one was
/// disturbed. Errors are not retried.
fn least_disturbed<T>(
    label: &str,
    retries: usize,
    measure: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    let mut best: Option<(Result<T, String>, f64)> = None;
    for attempt in 0..=retries {
        let load = ForeignLoad::start();
        let result = measure(label);
        let foreign = load.cpus();
        let failed = result.is_err();
        if best.as_ref().is_none_or(|(_, f)| foreign < *f) {
            best = Some((result, foreign));
        }
        // Errors are not retried: a hang would cost the timeout again.
        if failed || foreign <= FOREIGN_LOAD_NOTE {
            break;
        }
        let next = if attempt < retries {
            "; measuring again"
        } else {
            ""
        };
        say!("    (other processes used {foreign:.2} CPUs meanwhile{next})");
        if attempt < retries {
            crate::progress::add(1);
        }
    }
    let (result, foreign) = best.expect("at least one attempt");
    if foreign > FOREIGN_LOAD_NOTE
        && let Ok(mut notes) = LOAD_NOTES.lock()
    {
        notes.push(format!(
            "{label}: other processes used {foreign:.2} CPUs on average during the \
             measurement (least disturbed of {} attempts); its numbers are disturbed.",
            retries + 1
        ));
    }
    result
}

/// [`each_contestant_process`] in alternating rounds (see
/// [`crate::rounds`]): `rounds` rounds, each measuring every contestant
/// once in its own child process, the order rotating from round to
/// round. The child's measurement returns its timed runs (usually one per
/// process: `params` should ask for one); the result holds, per
/// contestant, the runs of every round in order, or the error of its
/// first failed round (it then leaves the remaining rounds).
pub fn each_contestant_in_rounds<C, P, T>(
    what: &str,
    key: &str,
    contestants: &[C],
    placement: Placement,
    limits: Limits,
    rounds: usize,
    params: &P,
) -> Vec<Result<Vec<T>, String>>
where
    C: Column,
    P: Serialize,
    T: DeserializeOwned,
{
    let results = contestant_rounds::<C, P, Vec<T>>(
        what,
        key,
        contestants,
        placement,
        limits,
        rounds,
        params,
    );
    crate::rounds::flatten(results)
}

/// What [`each_contestant_process`] and [`each_contestant_in_rounds`]
/// share: per contestant, the result of its process in each round.
fn contestant_rounds<C, P, T>(
    what: &str,
    key: &str,
    contestants: &[C],
    placement: Placement,
    limits: Limits,
    rounds: usize,
    params: &P,
) -> Vec<Result<Vec<T>, String>>
where
    C: Column,
    P: Serialize,
    T: DeserializeOwned,
{
    let params = match serde_json::to_string(params) {
        Ok(p) => p,
        Err(e) => {
            let e = format!("cannot serialise the parameters: {e}");
            return contestants.iter().map(|_| Err(e.clone())).collect();
        }
    };
    if rounds > 1 {
        say!("{what} ({rounds} alternating rounds):");
    } else {
        say!("{what}:");
    }
    crate::progress::add(contestants.len() * rounds);
    crate::rounds::alternate(contestants, rounds, |c, round| {
        let label = if rounds > 1 {
            format!("{what}/{} #{}", c.name(), round + 1)
        } else {
            format!("{what}/{}", c.name())
        };
        least_disturbed(&label, limits.retries, |label| {
            child_process::<T>(
                label,
                limits.timeout,
                key,
                c.name(),
                placement.client,
                &params,
            )
        })
    })
}

/// The rows `{label} RTT p50` (with its best round, see
/// [`crate::rounds::median_and_best_rows`]), `p90`, `p99` and `p99.9` of
/// runs whose `quantiles` are those of [`QUANTILE_NAMES`].
pub fn rtt_quantile_rows<R>(
    report: &mut Report,
    label: &str,
    results: &[Result<Vec<R>, String>],
    quantiles: impl Fn(&R) -> [f64; 4],
) {
    for (i, q) in QUANTILE_NAMES.iter().enumerate() {
        let name = format!("{label} RTT {q}");
        let cells = cells(results, |r| quantiles(r)[i]);
        if i == 0 {
            crate::rounds::median_and_best_rows(report, &name, Unit::Nanos, cells);
        } else {
            report.row(&name, Unit::Nanos, cells);
        }
    }
}

/// Remarks about other processes' CPU use during measurements, taken by
/// [`finish`] into the report's notes.
static LOAD_NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Other processes using CPUs above this average (in CPUs) during a
/// measurement of at least 0.5 s get a note in the report (below, the
/// 10 ms tick of `/proc/stat` makes the estimate too coarse).
const FOREIGN_LOAD_NOTE: f64 = 0.15;

/// Detects other processes (a compiler, say) using the CPUs while one
/// contestant is measured: the machine's busy CPU time (`/proc/stat`:
/// user, nice, system, irq, softirq) minus this process's (`getrusage`:
/// user + system). On an idle machine the two agree within a few
/// hundredths of a CPU.
struct ForeignLoad {
    machine: Option<[Duration; 2]>,
    own: [Duration; 2],
    started: std::time::Instant,
}

impl ForeignLoad {
    fn start() -> ForeignLoad {
        ForeignLoad {
            machine: machine_times(),
            own: own_times(),
            started: std::time::Instant::now(),
        }
    }

    /// CPUs used on average by other processes since [`start`]; 0 when
    /// unknown or when the span is under 0.5 s (too coarse to tell).
    ///
    /// [`start`]: ForeignLoad::start
    fn cpus(self) -> f64 {
        let (Some(before), Some(after)) = (self.machine, machine_times()) else {
            return 0.0;
        };
        let wall = self.started.elapsed().as_secs_f64();
        let own = own_times();
        let f = |i: usize| {
            let m = after[i].saturating_sub(before[i]).as_secs_f64();
            let o = own[i].saturating_sub(self.own[i]).as_secs_f64();
            (m - o) / wall.max(1e-3)
        };
        if wall < 0.5 { 0.0 } else { f(0) + f(1) }
    }
}

/// `[user + nice, system + irq + softirq]` time of all CPUs since boot,
/// from `/proc/stat`.
fn machine_times() -> Option<[Duration; 2]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.take(7).map(|f| f.parse().unwrap_or(0)).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq] = v[..] else {
        return None;
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    let d = |ticks: u64| Duration::from_secs_f64(ticks as f64 / hz);
    Some([d(user + nice), d(system + irq + softirq)])
}

/// This process's `[user, system]` CPU time and that of its finished
/// (waited-for) children, such as the measurement processes of
/// [`each_contestant_process`], from `getrusage`.
fn own_times() -> [Duration; 2] {
    let times = |who: libc::c_int| {
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a live rusage the kernel fills in.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return [Duration::ZERO; 2];
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        [tv(ru.ru_utime), tv(ru.ru_stime)]
    };
    let (me, children) = (times(libc::RUSAGE_SELF), times(libc::RUSAGE_CHILDREN));
    [me[0] + children[0], me[1] + children[1]]
}

/// The hidden first argument that makes this binary a measurement child
/// process (see [`each_contestant_process`] and [`child_main`]).
pub const CHILD_COMMAND: &str = "__run";

/// Marks the stdout line of a child process that carries its result.
const RESULT_MARKER: &str = "INSANE_BENCH_RESULT ";

/// What a child process prints after [`RESULT_MARKER`].
#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum ChildResult<T> {
    Ok(T),
    Error(String),
}

/// A measurement a child process can run: finds its contestant by name
/// (first argument), deserialises its parameters (second), measures,
/// serialises the result (see [`child_measure`]).
pub type ChildFn = fn(&str, &str) -> Result<serde_json::Value, String>;

/// The [`ChildFn`] body of a scenario: `measure(who, params)` with the
/// contestant ([`Column`]) found by its name, the parameters read from
/// JSON and the result written as JSON.
pub fn child_measure<C: Column, P: DeserializeOwned, T: Serialize>(
    who: &str,
    params: &str,
    measure: fn(C, P) -> Result<T, String>,
) -> Result<serde_json::Value, String> {
    let who = C::from_name(who).ok_or_else(|| format!("no contestant {who:?}"))?;
    let p: P = serde_json::from_str(params).ctx("parameters")?;
    let result = measure(who, p)?;
    serde_json::to_value(result).ctx("serialise the result")
}

/// The child side of [`each_contestant_process`]: `args` are `KEY
/// CONTESTANT CPU PARAMS` (CPU `-` for not pinned); `lookup` finds the
/// measurement registered under KEY, which finds its contestant by name.
/// Pins the main thread to CPU, prints the result line and exits without
/// waiting for threads that might still run.
pub fn child_main(args: &[String], lookup: impl Fn(&str) -> Option<ChildFn>) -> ! {
    let result = (|| {
        let [key, who, cpu, params] = args else {
            return Err(format!(
                "usage: insane-bench {CHILD_COMMAND} KEY CONTESTANT CPU PARAMS (got {} arguments)",
                args.len()
            ));
        };
        let measure = lookup(key).ok_or_else(|| format!("no measurement called {key:?}"))?;
        let cpu = match cpu.as_str() {
            "-" => None,
            n => Some(n.parse::<usize>().ctx("CPU")?),
        };
        pin_current_thread(cpu)?;
        std::panic::catch_unwind(|| measure(who, params))
            .map_err(|p| format!("panicked: {}", super::panic_message(&*p)))?
    })();
    let line = match result {
        Ok(v) => serde_json::to_string(&ChildResult::Ok(v)),
        Err(e) => serde_json::to_string(&ChildResult::<()>::Error(e)),
    };
    let code = match line {
        Ok(line) => {
            println!("{RESULT_MARKER}{line}");
            0
        }
        Err(e) => {
            eprintln!("cannot serialise the result: {e}");
            1
        }
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code)
}

/// Runs one measurement in a child process (see
/// [`each_contestant_process`]) and reads its result, with the progress
/// bar and log line of [`super::isolated_try`].
fn child_process<T: DeserializeOwned>(
    label: &str,
    timeout: Duration,
    key: &str,
    who: &str,
    cpu: Option<usize>,
    params: &str,
) -> Result<T, String> {
    crate::progress::begin(label);
    let started = std::time::Instant::now();
    let result = run_child(timeout, key, who, cpu, params);
    match &result {
        Ok(_) => say!(
            "  {label:<42} ok ({:.1} s, own process)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => say!("  {label:<42} FAILED: {e}"),
    }
    crate::progress::done();
    result
}

/// [`child_process`] without the logging.
fn run_child<T: DeserializeOwned>(
    timeout: Duration,
    key: &str,
    who: &str,
    cpu: Option<usize>,
    params: &str,
) -> Result<T, String> {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().ctx("current_exe")?;
    let mut child = Command::new(exe)
        .arg(CHILD_COMMAND)
        .arg(key)
        .arg(who)
        .arg(cpu.map_or("-".to_owned(), |c| c.to_string()))
        .arg(params)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx("start the measurement process")?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let errors = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "hung: no result after {} s (process killed)",
                timeout.as_secs()
            ));
        }
    };
    let status = child.wait().ctx("wait for the measurement process")?;
    let line = out.lines().find_map(|l| l.strip_prefix(RESULT_MARKER));
    let Some(line) = line else {
        use std::os::unix::process::ExitStatusExt as _;
        let stderr = errors.join().unwrap_or_default();
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        let how = match status.signal() {
            Some(sig) => format!("crashed: killed by signal {sig}{}", signal_name(sig)),
            None => format!("exited with {status} without a result"),
        };
        return Err(match last {
            Some(l) => format!("{how}; its last message: {}", l.trim()),
            None => how,
        });
    };
    match serde_json::from_str::<ChildResult<T>>(line) {
        Ok(ChildResult::Ok(v)) => Ok(v),
        Ok(ChildResult::Error(e)) => Err(e),
        Err(e) => Err(format!(
            "unreadable result from the measurement process: {e}"
        )),
    }
}

/// ` (SIGSEGV)` and the like for the common fatal signals.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGFPE => " (SIGFPE)",
        _ => "",
    }
}

/// One cell per contestant: `f` of each timed run, median over the runs.
pub fn cells<R>(results: &[Result<Vec<R>, String>], f: impl Fn(&R) -> f64) -> Vec<Cell> {
    results
        .iter()
        .map(|r| match r {
            Ok(runs) if !runs.is_empty() => Cell::from_samples(runs.iter().map(&f).collect()),
            Ok(_) => Cell::failed("no timed run"),
            Err(e) => Cell::failed(e.clone()),
        })
        .collect()
}

/// Parameters every network report records, and the user's notes.
///
/// `both_sides`: whether client and server both run the contestant (else
/// only the server does).
pub fn describe_run(
    report: &mut Report,
    args: &NetArgs,
    placement: &Placement,
    repeats: usize,
    both_sides: bool,
) {
    let per = if both_sides {
        "one per side"
    } else {
        "server only"
    };
    report.param("mode", if args.common.quick { "quick" } else { "full" });
    report.param("timed runs (median reported)", repeats);
    report.param("placement", placement.describe());
    report.param(
        "insane runtimes",
        format!(
            "1 core each ({per}), idle policy {}",
            format!("{:?}", args.idle.policy()).to_lowercase()
        ),
    );
    report.param("tokio runtimes", format!("current-thread ({per})"));
    report.param(
        "available CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let one_min = load.split_whitespace().next().unwrap_or("?").to_owned();
        report.param("load average (1 min) at start", one_min);
    }
    report.param("kernel", kernel_release());
    report.param(
        "repeats of a measurement disturbed by other processes",
        format!("up to {} (least disturbed kept)", args.retries),
    );
    report.param(
        "per-contestant timeout",
        format!("{} s", args.common.timeout),
    );
    report.notes.extend(args.common.note.iter().cloned());
    if let insane::runtime::IdlePolicy::SpinThenPark(spin) = args.idle.policy() {
        report.notes.push(format!(
            "insane's idle policy spins up to {} µs before parking; that spinning counts in \
             its CPU times (--idle park compares without it).",
            spin.as_micros()
        ));
    }
}

/// Finishes a report: ratio columns of every insane contestant against
/// tokio, then [`disturbance_notes`].
pub fn finish(report: &mut Report) {
    report.ratios_against("insane", Contestant::TokioCt.name());
    disturbance_notes(report);
}

/// Adds the notes about other processes' load during the measurements
/// made since the last report (see [`each_contestant_process`]) and the
/// abandoned-thread warning to `report`.
pub fn disturbance_notes(report: &mut Report) {
    if let Ok(mut notes) = LOAD_NOTES.lock() {
        report.notes.append(&mut notes);
    }
    if super::abandoned_threads() {
        report.notes.push(
            "a measurement hung and its thread kept running: numbers measured after it are suspect"
                .to_owned(),
        );
    }
}

/// `64 B`, `1 KiB`, `16 KiB`.
pub fn size_label(bytes: u32) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_result_round_trip() {
        let ok = serde_json::to_string(&ChildResult::Ok(vec![1.5_f64])).unwrap();
        assert_eq!(ok, r#"{"ok":[1.5]}"#);
        let back: ChildResult<Vec<f64>> = serde_json::from_str(&ok).unwrap();
        assert!(matches!(back, ChildResult::Ok(v) if v == [1.5]));
        let err = serde_json::to_string(&ChildResult::<()>::Error("boom".into())).unwrap();
        let back: ChildResult<Vec<f64>> = serde_json::from_str(&err).unwrap();
        assert!(matches!(back, ChildResult::Error(e) if e == "boom"));
    }

    #[test]
    fn contestant_names_round_trip() {
        for &c in Contestant::ALL {
            assert_eq!(Contestant::from_name(c.name()), Some(c));
        }
        assert_eq!(Contestant::from_name("nope"), None);
    }
}
