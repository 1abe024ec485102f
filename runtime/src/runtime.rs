//! [`Runtime`] and its [`Builder`]: how many cores, pinned or not, how idle
//! cores wait, and which reactor each core starts with.
//!
//! Core 0 is the thread that calls [`Runtime::block_on`]; cores `1..n` are
//! threads the runtime starts and joins when it is dropped.
//!
//! A [`Handle`] (from [`Runtime::handle`] or [`Handle::current`]) reaches
//! the runtime from any thread: spawn on it, block on it, enter it.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use crate::affinity;
use crate::context;
use crate::core::{Core, CoreShared, RuntimeShared, Tuning};
pub use crate::metrics::RuntimeMetrics;

/// What a core does when it has nothing to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Sleep at once in the parking reactor (least CPU, highest wake-up
    /// latency).
    Park,
    /// Busy-poll the reactors for up to this long, then sleep. Short spins
    /// catch the next packet of a ping-pong without a wake-up.
    SpinThenPark(Duration),
    /// Never sleep: busy-poll forever (latency-critical cores; burns a CPU).
    Spin,
}

impl Default for IdlePolicy {
    /// Spin for 20 µs, then park.
    fn default() -> Self {
        IdlePolicy::SpinThenPark(Duration::from_micros(20))
    }
}

/// Called once on every core's thread when the runtime starts, before any
/// task runs; drivers use it to register their reactor
/// ([`crate::reactor::register`]).
pub type CoreInit = Arc<dyn Fn(usize) -> io::Result<()> + Send + Sync>;

/// Configures and builds a [`Runtime`].
#[derive(Clone)]
pub struct Builder {
    cores: Option<usize>,
    pin_cores: bool,
    idle: IdlePolicy,
    priority: bool,
    /// Tasks a core runs per turn before it polls its reactors, timers and
    /// injection queue again ([`Builder::event_interval`]).
    event_interval: usize,
    /// [`Builder::global_queue_interval`]; `None`: at each turn only.
    global_queue_interval: Option<u32>,
    /// [`Builder::max_io_events_per_tick`]; `None`: the driver's default.
    io_events_per_tick: Option<usize>,
    /// [`Builder::max_io_events_per_busy_tick`]; `None`: as per tick.
    io_events_per_busy_tick: Option<usize>,
    init: Vec<CoreInit>,
    thread_name: String,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
    stop: Vec<CoreStop>,
    thread_stack_size: Option<usize>,
    name: Option<String>,
    thread_name_fn: Option<ThreadNameFn>,
    park_hooks: ParkHooks,
}

/// Names a thread the runtime starts ([`Builder::thread_name_fn`]).
pub type ThreadNameFn = Arc<dyn Fn() -> String + Send + Sync>;

/// A hook run by a core around its parks ([`Builder::on_core_park`]).
pub type ParkHook = Arc<dyn Fn() + Send + Sync>;

/// `on_core_park` / `on_core_unpark` hooks.
#[derive(Clone, Default)]
pub(crate) struct ParkHooks {
    pub(crate) park: Option<ParkHook>,
    pub(crate) unpark: Option<ParkHook>,
}

/// Called on every core's thread when the runtime stops, after the core's
/// tasks were dropped ([`Builder::on_core_stop`]).
pub type CoreStop = Arc<dyn Fn(usize) + Send + Sync>;

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("cores", &self.cores)
            .field("pin_cores", &self.pin_cores)
            .field("idle", &self.idle)
            .field("priority", &self.priority)
            .field("event_interval", &self.event_interval)
            .field("global_queue_interval", &self.global_queue_interval)
            .field("io_events_per_tick", &self.io_events_per_tick)
            .field("io_events_per_busy_tick", &self.io_events_per_busy_tick)
            .field("init_hooks", &self.init.len())
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_keep_alive", &self.thread_keep_alive)
            .finish()
    }
}

impl Builder {
    /// A builder with defaults: one core per CPU of the process's allowed
    /// set, not pinned, [`IdlePolicy::default`].
    pub fn new() -> Self {
        Self {
            cores: None,
            pin_cores: false,
            idle: IdlePolicy::default(),
            priority: true,
            event_interval: crate::core::DEFAULT_EVENT_INTERVAL,
            global_queue_interval: None,
            io_events_per_tick: None,
            io_events_per_busy_tick: None,
            init: Vec::new(),
            thread_name: "insane-core".into(),
            max_blocking_threads: crate::task::DEFAULT_MAX_THREADS,
            thread_keep_alive: crate::task::DEFAULT_KEEP_ALIVE,
            stop: Vec::new(),
            thread_stack_size: None,
            name: None,
            thread_name_fn: None,
            park_hooks: ParkHooks::default(),
        }
    }

    /// Number of cores (executor threads, including the caller of
    /// `block_on`). Default: the size of the allowed CPU set.
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = Some(n);
        self
    }

    /// Pin core `i` to the `i`-th CPU of the process's allowed set (with
    /// wrap-around when there are more cores than CPUs).
    pub fn pin_cores(mut self, pin: bool) -> Self {
        self.pin_cores = pin;
        self
    }

    /// What idle cores do (spin, then park).
    pub fn idle(mut self, policy: IdlePolicy) -> Self {
        self.idle = policy;
        self
    }

    /// Whether cores run tasks by [`Latency`](crate::task::Latency) class
    /// (default `true`): critical tasks before normal ones, with a slice
    /// of normal work between passes (the rules are on `Latency`). `false`
    /// puts every task in one FIFO run queue, as before classes existed;
    /// [`Runtime::priority`] tells libraries (insane's QoS endpoints turn
    /// their receive priority off with it too).
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).priority(false).build()?;
    /// assert!(!rt.block_on(async { insane_runtime::runtime::Runtime::priority() }));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn priority(mut self, on: bool) -> Self {
        self.priority = on;
        self
    }

    /// How many tasks a core runs before it polls its I/O drivers, timers
    /// and the queue of tasks sent from other threads again (tokio's
    /// `event_interval`; default 64, tokio's is 61). Lower favours I/O
    /// latency, higher task throughput. `build` refuses 0.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).event_interval(8).build()?;
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn event_interval(mut self, tasks: u32) -> Self {
        self.event_interval = tasks as usize;
        self
    }

    /// How many tasks a core runs between two looks at the queue of tasks
    /// sent to it from other threads (tokio's `global_queue_interval`;
    /// insane has no global queue: each core has its own injection
    /// queue). Every `tasks` tasks run, the oldest task of that queue
    /// runs next, ahead of the core's own ready tasks. Unset (the
    /// default), the core moves its injected tasks to the back of its run
    /// queue once per turn only (every [`event_interval`](Self::event_interval)
    /// tasks). `build` refuses 0.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .global_queue_interval(31)
    ///     .build()?;
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn global_queue_interval(mut self, tasks: u32) -> Self {
        self.global_queue_interval = Some(tasks);
        self
    }

    /// How many I/O events a core's kernel driver processes per poll
    /// (tokio's `max_io_events_per_tick`): epoll events per `epoll_wait`,
    /// io_uring completions per reap. Unset, each driver keeps its own
    /// default (epoll 256, io_uring 2048); what is left over waits in the
    /// kernel for the next poll. Also the busy limit unless
    /// [`max_io_events_per_busy_tick`](Self::max_io_events_per_busy_tick)
    /// is set. `build` refuses 0.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .max_io_events_per_tick(1024)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_io_events_per_tick(mut self, events: usize) -> Self {
        self.io_events_per_tick = Some(events);
        self
    }

    /// How many I/O events a core's driver processes when it polls while
    /// the core still has tasks to run (tokio's
    /// `max_io_events_per_busy_tick`); a core with nothing to run waits in
    /// its driver and takes up to
    /// [`max_io_events_per_tick`](Self::max_io_events_per_tick). A small
    /// busy batch bounds the tasks one poll wakes ahead of those already
    /// ready. Default: the per-tick limit. `build` refuses 0.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .max_io_events_per_tick(128)
    ///     .max_io_events_per_busy_tick(8)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_io_events_per_busy_tick(mut self, events: usize) -> Self {
        self.io_events_per_busy_tick = Some(events);
        self
    }

    /// Prefix of worker thread names (`{name}-{core}`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// The most threads the blocking pool runs at once
    /// ([`spawn_blocking`](crate::task::spawn_blocking)); further closures
    /// wait in a queue. Default 512, tokio's. Blocking threads are not
    /// cores: they start on demand and never run async tasks.
    /// [`build`](Self::build) refuses 0.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .max_blocking_threads(4)
    ///     .build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for another closure before
    /// it exits. Default 10 s, tokio's.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .thread_keep_alive(Duration::from_millis(100))
    ///     .build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.thread_keep_alive = keep_alive;
        self
    }

    /// Adds a hook run on every core's thread at start-up, in order; an
    /// error from any core makes [`build`](Self::build) fail with it.
    pub fn on_core_start(mut self, init: CoreInit) -> Self {
        self.init.push(init);
        self
    }

    /// Adds a hook run on every core's thread when the runtime stops, after
    /// the core's tasks were cancelled and dropped (tokio's
    /// `on_thread_stop`, per core). Core 0's runs on the thread that drops
    /// the runtime.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let stopped = Arc::new(AtomicUsize::new(0));
    /// let count = stopped.clone();
    /// let rt = insane_runtime::runtime::Runtime::builder()
    ///     .cores(2)
    ///     .on_core_stop(Arc::new(move |_core| {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     }))
    ///     .build()?;
    /// drop(rt);
    /// assert_eq!(stopped.load(Ordering::Relaxed), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_core_stop(mut self, hook: CoreStop) -> Self {
        self.stop.push(hook);
        self
    }

    /// Stack size of the threads the runtime starts for cores `1..n`
    /// (tokio's `thread_stack_size`); core 0 is the caller's thread and
    /// keeps its stack. Default: the standard library's (2 MiB, or
    /// `RUST_MIN_STACK`).
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Names the threads the runtime starts for cores `1..n` with `f`
    /// instead of `{thread_name}-{core}` (tokio's `thread_name_fn`).
    pub fn thread_name_fn(mut self, f: ThreadNameFn) -> Self {
        self.thread_name_fn = Some(f);
        self
    }

    /// Runs `f` on a core's thread just before it parks (sleeps in its
    /// driver because it has nothing to do; tokio's `on_thread_park`).
    /// Busy-polling cores park rarely.
    pub fn on_core_park(mut self, f: ParkHook) -> Self {
        self.park_hooks.park = Some(f);
        self
    }

    /// Runs `f` on a core's thread just after a park ends (tokio's
    /// `on_thread_unpark`).
    pub fn on_core_unpark(mut self, f: ParkHook) -> Self {
        self.park_hooks.unpark = Some(f);
        self
    }

    /// Names the runtime ([`Handle::name`], tokio's `Builder::name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Like [`on_core_start`](Self::on_core_start) but runs `first` before
    /// the hooks already added (the facade installs the I/O driver this way
    /// so user hooks can use it).
    pub fn prepend_core_start(mut self, first: CoreInit) -> Self {
        self.init.insert(0, first);
        self
    }

    /// Starts the worker cores and returns the runtime.
    ///
    /// # Errors
    /// `cores(0)`, `max_blocking_threads(0)`, an unreadable CPU set, a failed pin, a failed eventfd, a
    /// worker thread that cannot start, or an `on_core_start` hook's error
    /// (with the core named).
    pub fn build(self) -> io::Result<Runtime> {
        let cpus = affinity::allowed_cpus()?;
        let n = self.cores.unwrap_or(cpus.len().max(1));
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a runtime needs at least 1 core",
            ));
        }
        if self.max_blocking_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_blocking_threads must be at least 1",
            ));
        }
        if self.event_interval == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "event_interval must be at least 1 (tasks a core runs between two polls of its I/O)",
            ));
        }
        let zero = |what: &str, why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} must be at least 1 ({why})"),
            )
        };
        if self.global_queue_interval == Some(0) {
            return Err(zero(
                "global_queue_interval",
                "tasks a core runs between two looks at the tasks sent to it",
            ));
        }
        if self.io_events_per_tick == Some(0) {
            return Err(zero(
                "max_io_events_per_tick",
                "I/O events a core processes per poll",
            ));
        }
        if self.io_events_per_busy_tick == Some(0) {
            return Err(zero(
                "max_io_events_per_busy_tick",
                "I/O events a busy core processes per poll",
            ));
        }
        let tuning = Tuning {
            priority: self.priority,
            event_interval: self.event_interval,
            global_queue_interval: self.global_queue_interval.unwrap_or(0) as usize,
            io_events_per_tick: self.io_events_per_tick,
            io_events_per_busy_tick: self.io_events_per_busy_tick,
        };
        let cores = (0..n)
            .map(CoreShared::new)
            .map(|r| r.map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(RuntimeShared {
            cores,
            name: self.name.clone(),
            stop: std::panic::AssertUnwindSafe(self.stop.clone()),
            park_hooks: std::panic::AssertUnwindSafe(self.park_hooks.clone()),
            shutdown: Default::default(),
            blocking: Arc::new(crate::task::BlockingPool::new(
                self.max_blocking_threads,
                self.thread_keep_alive,
                &self.thread_name,
            )),
        });
        let handle = Handle::new(shared.clone(), 0);
        let cpu_of = |i: usize| cpus.get(i % cpus.len().max(1)).copied();

        let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<()>)>();
        let mut threads = Vec::with_capacity(n.saturating_sub(1));
        for index in 1..n {
            let rt_shared = shared.clone();
            let init = self.init.clone();
            let idle = self.idle;
            let cpu = if self.pin_cores { cpu_of(index) } else { None };
            let ready = ready_tx.clone();
            let entered = handle.clone();
            let name = match &self.thread_name_fn {
                Some(f) => f(),
                None => format!("{}-{index}", self.thread_name),
            };
            let mut thread = std::thread::Builder::new().name(name);
            if let Some(bytes) = self.thread_stack_size {
                thread = thread.stack_size(bytes);
            }
            let spawned = thread.spawn(move || {
                // A worker core is inside its runtime for its whole life.
                let _entered = context::enter_handle(entered);
                let core = Core::new(
                    rt_shared.cores[index].clone(),
                    rt_shared.clone(),
                    idle,
                    tuning,
                );
                let started = start_core(&core, cpu, &init);
                let ok = started.is_ok();
                let _ = ready.send((index, started));
                if ok {
                    core.run_worker();
                }
                core.shutdown();
                core.run_stop_hooks();
            });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shutdown_threads(&shared, threads);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot start core {index}: {e}"),
                    ));
                }
            }
        }
        drop(ready_tx);

        let entered = context::enter_handle(handle.clone());
        let core0 = Rc::new(Core::new(
            shared.cores[0].clone(),
            shared.clone(),
            self.idle,
            tuning,
        ));
        let mut first_error = start_core(
            &core0,
            if self.pin_cores { cpu_of(0) } else { None },
            &self.init,
        )
        .err()
        .map(|e| (0, e));
        for _ in 1..n {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((index, Err(e))) => {
                    first_error.get_or_insert((index, e));
                }
                Err(_) => {
                    first_error.get_or_insert((
                        usize::MAX,
                        io::Error::other("a core thread died at start-up"),
                    ));
                    break;
                }
            }
        }
        drop(entered);
        let runtime = Runtime {
            shared,
            core0,
            threads,
            handle,
            stopped: false,
        };
        if let Some((index, e)) = first_error {
            drop(runtime);
            return Err(io::Error::new(
                e.kind(),
                format!("core {index} failed to start: {e}"),
            ));
        }
        tracing::debug!(cores = n, pinned = self.pin_cores, idle = ?self.idle, "insane runtime started");
        Ok(runtime)
    }
}

fn start_core(core: &Core, cpu: Option<usize>, init: &[CoreInit]) -> io::Result<()> {
    if let Some(cpu) = cpu {
        affinity::pin_current_thread(cpu)?;
    }
    let _guard = context::enter(core);
    for hook in init {
        hook(core.index())?;
    }
    Ok(())
}

fn shutdown_threads(shared: &RuntimeShared, threads: Vec<ThreadHandle<()>>) {
    shared.shutdown.store(true, Ordering::Release);
    for core in &shared.cores {
        core.wake();
    }
    for t in threads {
        let _ = t.join();
    }
}

/// A thread-per-core runtime: core 0 runs on the thread that calls
/// [`block_on`](Runtime::block_on), the others on threads it owns.
///
/// Dropping the runtime stops every core; tasks still pending are cancelled
/// and dropped on their own core (their destructors run). Then blocking
/// closures ([`spawn_blocking`](crate::task::spawn_blocking)) that have not
/// started are cancelled, and the drop waits for the running ones to
/// return, as tokio's does ([`shutdown_timeout`](Runtime::shutdown_timeout)
/// and [`shutdown_background`](Runtime::shutdown_background) wait less).
///
/// ```
/// use insane_runtime::runtime::Runtime;
/// let rt = Runtime::builder().cores(2).build()?;
/// let answer = rt.block_on(async {
///     insane_runtime::task::spawn_on(1, async { 40 + 2 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<RuntimeShared>,
    core0: Rc<Core>,
    threads: Vec<ThreadHandle<()>>,
    /// The handle every core thread has entered (its round-robin counter
    /// is the one `Runtime::spawn` uses).
    handle: Handle,
    /// The cores have stopped and the blocking pool was shut down
    /// (`shutdown_timeout`), so `Drop` has nothing left to do.
    stopped: bool,
}

impl Runtime {
    /// A [`Builder`] with defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Builds a runtime with the defaults.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new().build()
    }

    /// Runs `future` to completion on core 0 (this thread), together with
    /// the tasks of core 0; the other cores run their tasks meanwhile.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// assert_eq!(rt.block_on(async { 6 * 7 }), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// When called from inside a runtime (it would block a core), or when
    /// `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if context::is_inside() {
            panic!(
                "Runtime::block_on called from inside an insane runtime; \
                 this would block the core's other tasks (await the future instead)"
            );
        }
        let _entered = context::enter_handle(self.handle.clone());
        self.core0.block_on(future)
    }

    /// Spawns a `!Send` future on core 0, the thread that owns this
    /// runtime (tokio's `LocalRuntime::spawn_local`): it runs while
    /// [`block_on`](Self::block_on) runs. Callable outside `block_on`:
    /// a `Runtime` never leaves the thread that built it (it is `!Send`),
    /// which is core 0's.
    ///
    /// ```
    /// use std::rc::Rc;
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// let shared = Rc::new(6);
    /// let copy = shared.clone();
    /// let task = rt.spawn_local(async move { *copy * 7 });
    /// assert_eq!(rt.block_on(task).unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_local<F>(&self, future: F) -> crate::task::JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        crate::task::spawn_local_on_core(self.core0.shared.clone(), future)
    }

    /// Spawns a `Send` future on this runtime and returns its
    /// [`JoinHandle`](crate::task::JoinHandle): what
    /// [`Handle::spawn`] does (`rt.handle().spawn(future)`, as in tokio).
    ///
    /// From a thread that is not one of this runtime's cores (the usual
    /// case: the thread that owns the runtime, outside `block_on`), the
    /// task goes to a worker core (`1..n`), chosen round-robin, so it runs
    /// at once without anyone calling `block_on`. On a core of this
    /// runtime it stays on that core, like [`spawn`](crate::task::spawn).
    /// A 1-core runtime has only core 0, which runs while `block_on` runs:
    /// its tasks wait for that.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.spawn(async move { tx.send(1 + 1).unwrap() });
    /// // Core 1 runs the task; nobody calls block_on.
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> crate::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs the blocking closure `f` on this runtime's blocking thread
    /// pool; [`Handle::spawn_blocking`] (and
    /// [`task::spawn_blocking`](crate::task::spawn_blocking)'s rules).
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// let sum = rt.spawn_blocking(|| (1..=10u32).sum::<u32>());
    /// assert_eq!(rt.block_on(sum).unwrap(), 55);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> crate::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// A [`Handle`] to this runtime: `Clone + Send + Sync`, usable from any
    /// thread, as tokio's `Runtime::handle`.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// let handle = rt.handle().clone();
    /// let n = std::thread::spawn(move || handle.block_on(async { 21 * 2 }))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(n, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Enters this runtime's context on this thread until the guard is
    /// dropped: [`spawn`](crate::task::spawn),
    /// [`spawn_blocking`](crate::task::spawn_blocking) and
    /// [`Handle::current`] then work on a thread that is not a core, and
    /// spawn through the handle (worker cores, round-robin). Like tokio's
    /// `Runtime::enter`. It does not make the thread a core: timers,
    /// sockets and [`spawn_local`](crate::task::spawn_local) still need one.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// let _guard = rt.enter();
    /// let task = insane_runtime::spawn(async { "spawned from a plain thread" });
    /// # drop(task);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Shuts the runtime down, waiting at most `duration` for blocking
    /// closures. Like tokio's `Runtime::shutdown_timeout`.
    ///
    /// First the cores stop, as when the runtime is dropped: every pending
    /// task is cancelled and dropped on its own core (its destructor runs
    /// there; the core threads are joined, which takes as long as those
    /// destructors). Then blocking closures that have not started are
    /// cancelled, and the call waits until the running ones return or
    /// `duration` has passed, whichever is first; those still running then
    /// finish on their own threads, which exit afterwards.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(500)));
    /// let start = Instant::now();
    /// rt.shutdown_timeout(Duration::from_millis(10));
    /// assert!(start.elapsed() < Duration::from_millis(400));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(mut self, duration: Duration) {
        self.stop_cores();
        self.shared
            .blocking
            .shutdown_until(Some(Instant::now() + duration));
        self.stopped = true;
    }

    /// Shuts the runtime down without waiting for blocking closures:
    /// [`shutdown_timeout`](Self::shutdown_timeout) with a zero duration,
    /// as in tokio. The cores still stop (their tasks are dropped on their
    /// own cores) before it returns.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// rt.spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    /// rt.shutdown_background(); // returns without waiting for the sleep
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    /// Stops every core: tasks are cancelled and dropped on their own core.
    fn stop_cores(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for core in &self.shared.cores {
            core.wake();
        }
        {
            // Destructors of core 0's tasks may look for their runtime.
            let _entered = context::enter_handle(self.handle.clone());
            self.core0.shutdown();
            self.core0.run_stop_hooks();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    #[cfg(test)]
    pub(crate) fn blocking_pool(&self) -> &crate::task::BlockingPool {
        &self.shared.blocking
    }

    /// The number of cores of this runtime.
    pub fn num_cores(&self) -> usize {
        self.shared.cores.len()
    }

    /// The runtime's metrics ([`Handle::metrics`]).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// The index of the core running the caller, or `None` outside a
    /// runtime.
    pub fn current_core() -> Option<usize> {
        context::with_core(|c| c.index())
    }

    /// The number of cores of the runtime the caller runs on, or `None`
    /// outside a runtime.
    pub fn cores() -> Option<usize> {
        context::with_core(|c| c.runtime.cores.len())
    }

    /// Whether the current core runs tasks by latency class
    /// ([`Builder::priority`]); `true` outside a runtime (the default).
    ///
    /// ```
    /// assert!(insane_runtime::runtime::Runtime::priority());
    /// ```
    pub fn priority() -> bool {
        context::with_core(|c| c.priority()).unwrap_or(true)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.stop_cores();
        // Blocking closures that have not started are cancelled; running
        // ones are waited for (tokio's behaviour).
        self.shared.blocking.shutdown_until(None);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.num_cores())
            .finish()
    }
}

/// A handle to a [`Runtime`]: `Clone + Send + Sync`, usable from any
/// thread, with tokio's `runtime::Handle` names. Get one with
/// [`Runtime::handle`] or, inside the runtime, [`Handle::current`].
///
/// Where thread-per-core makes it differ from tokio's:
/// - [`spawn`](Self::spawn) picks a core: on a core of this runtime, that
///   core (like [`task::spawn`](crate::task::spawn)); from any other thread,
///   a worker core (`1..n`) chosen round-robin. Tasks never move afterwards.
///   A 1-core runtime has only core 0, which runs while
///   [`Runtime::block_on`] runs: tasks spawned on it from elsewhere wait
///   for that.
/// - [`block_on`](Self::block_on) runs the future as a task on a core and
///   blocks the caller until it completes, so the future must be
///   `Send + 'static` (tokio polls it on the calling thread and needs
///   neither).
/// - [`enter`](Self::enter) makes `spawn`, `spawn_blocking` and
///   `Handle::current` work on a thread that is not a core, but it does not
///   make the thread a core: timers, sockets and `spawn_local` still need
///   one.
///
/// ```
/// use insane_runtime::runtime::{Handle, Runtime};
/// let rt = Runtime::builder().cores(2).build()?;
/// let handle: Handle = rt.handle().clone();
/// let answer = std::thread::spawn(move || {
///     let task = handle.spawn(async { 40 + 2 });
///     handle.block_on(task).unwrap()
/// })
/// .join()
/// .unwrap();
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<RuntimeShared>,
    /// Round-robin position among the worker cores.
    next: AtomicUsize,
}

impl Handle {
    pub(crate) fn new(shared: Arc<RuntimeShared>, start: usize) -> Self {
        Handle {
            inner: Arc::new(HandleInner {
                shared,
                next: AtomicUsize::new(start),
            }),
        }
    }

    /// A handle to the runtime `core` belongs to. Every core thread has its
    /// runtime's handle entered, so this serves only code running on a
    /// core outside those moments.
    pub(crate) fn for_core(core: &Core) -> Self {
        Handle::new(core.runtime.clone(), core.index())
    }

    /// The runtime's blocking thread pool.
    pub(crate) fn blocking_pool(&self) -> &Arc<crate::task::BlockingPool> {
        &self.inner.shared.blocking
    }

    /// The handle of the runtime the caller is in: the one entered on this
    /// thread ([`Runtime::enter`], [`Handle::enter`]), else the runtime of
    /// the core running the caller. Like tokio's `Handle::current`.
    ///
    /// ```
    /// use insane_runtime::runtime::{Handle, Runtime};
    /// let rt = Runtime::builder().cores(1).build()?;
    /// let cores = rt.block_on(async { Handle::current().num_cores() });
    /// assert_eq!(cores, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// Outside a runtime (not a core, no `enter` guard), as tokio does;
    /// [`try_current`](Self::try_current) returns an error instead.
    #[track_caller]
    pub fn current() -> Self {
        match Self::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("{e}"),
        }
    }

    /// The handle of the runtime the caller is in, or an error outside a
    /// runtime. Like tokio's `Handle::try_current`.
    ///
    /// ```
    /// use insane_runtime::runtime::{Handle, Runtime};
    /// assert!(Handle::try_current().unwrap_err().is_missing_context());
    /// let rt = Runtime::builder().cores(1).build()?;
    /// assert!(rt.block_on(async { Handle::try_current() }).is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`TryCurrentError`]: no runtime on this thread, or the thread is
    /// being torn down.
    pub fn try_current() -> Result<Self, TryCurrentError> {
        context::current_handle().map_err(|why| TryCurrentError {
            destroyed: why == context::NoHandle::Destroyed,
        })
    }

    /// Spawns a `Send` future on the runtime and returns its
    /// [`JoinHandle`](crate::task::JoinHandle), from any thread. Like
    /// tokio's `Handle::spawn`, except where the task runs (it never moves
    /// afterwards): on a core of this runtime, that core; from any other
    /// thread, a worker core (`1..n`) chosen round-robin. On a 1-core
    /// runtime every such task goes to core 0, which runs while
    /// [`Runtime::block_on`] runs. After the runtime shut down, the task is
    /// cancelled at once (its `JoinHandle` reports a cancellation).
    ///
    /// ```
    /// use insane_runtime::runtime::{Handle, Runtime};
    /// let rt = Runtime::builder().cores(3).build()?;
    /// let handle = rt.handle();
    /// let tasks: Vec<_> = (0..2)
    ///     .map(|_| handle.spawn(async { Runtime::current_core().unwrap() }))
    ///     .collect();
    /// let cores: Vec<_> = tasks.into_iter().map(|t| handle.block_on(t).unwrap()).collect();
    /// assert_eq!(cores, [1, 2]); // round-robin over the worker cores
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> crate::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let here = context::with_core(|c| {
            Arc::ptr_eq(&c.runtime, &self.inner.shared).then(|| c.shared.clone())
        })
        .flatten();
        let core = here.unwrap_or_else(|| self.next_worker());
        crate::task::spawn_send(core, future)
    }

    /// The next worker core, round-robin (core 0 on a 1-core runtime).
    fn next_worker(&self) -> Arc<CoreShared> {
        let cores = &self.inner.shared.cores;
        let workers = cores.len() - 1;
        if workers == 0 {
            return cores[0].clone();
        }
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        cores[1 + n % workers].clone()
    }

    /// Runs the blocking closure `f` on the runtime's blocking thread pool,
    /// from any thread; like tokio's `Handle::spawn_blocking` and
    /// [`task::spawn_blocking`](crate::task::spawn_blocking) (same pool,
    /// limits and abort rules). The closure runs with this handle entered.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// let task = rt.handle().spawn_blocking(|| "from the pool");
    /// assert_eq!(rt.block_on(task).unwrap(), "from the pool");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> crate::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        crate::task::spawn_blocking_in(self.clone(), f)
    }

    /// Enters the runtime's context on this thread until the guard is
    /// dropped (which restores the previous one): like tokio's
    /// `Handle::enter`. While it lives, [`task::spawn`](crate::task::spawn),
    /// [`task::spawn_blocking`](crate::task::spawn_blocking) and
    /// [`Handle::current`] work on a thread that is not a core and spawn
    /// through this handle. It does not make the thread a core: timers,
    /// sockets and `spawn_local` still need one. Guards should be dropped
    /// in the reverse order of their creation (tokio panics otherwise;
    /// insane restores whatever the dropped guard replaced).
    ///
    /// ```
    /// use insane_runtime::runtime::{Handle, Runtime};
    /// let rt = Runtime::builder().cores(2).build()?;
    /// let handle = rt.handle().clone();
    /// std::thread::spawn(move || {
    ///     let _guard = handle.enter();
    ///     let task = insane_runtime::spawn(async { 7 });
    ///     assert_eq!(Handle::current().block_on(task).unwrap(), 7);
    /// })
    /// .join()
    /// .unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _guard: context::enter_handle(self.clone()),
            _handle: PhantomData,
        }
    }

    /// Runs `future` to completion on the runtime and blocks this thread
    /// until it has: for threads that are not cores (a plain
    /// `std::thread`, a blocking closure, a test's main thread outside
    /// `block_on`).
    ///
    /// **Unlike tokio**, the future runs as a task on a core, chosen as
    /// [`spawn`](Self::spawn) chooses (a worker core, round-robin; it takes
    /// its turn in the rotation), so it must be `Send + 'static`: timers and
    /// sockets it uses are that core's.
    /// On a 1-core runtime the task waits until core 0 runs
    /// ([`Runtime::block_on`] on the runtime's thread). If the future
    /// panics, the panic is resumed here, as in tokio.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// let handle = rt.handle().clone();
    /// let out = std::thread::spawn(move || {
    ///     handle.block_on(async {
    ///         insane_runtime::time::sleep(std::time::Duration::from_millis(1)).await;
    ///         "slept on a core"
    ///     })
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(out, "slept on a core");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// On a core thread of any insane runtime (blocking it would stop every
    /// task of that core, possibly the one this waits for: await the future
    /// instead); when the future panics; when the runtime shuts down before
    /// the future completes.
    #[track_caller]
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if context::is_inside() {
            panic!(
                "Handle::block_on called on a core thread of an insane runtime; \
                 blocking the core would stop its tasks and could deadlock \
                 (await the future instead, or call block_on from a thread \
                 that is not a core, e.g. inside spawn_blocking)"
            );
        }
        match wait(self.spawn(future)) {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("Handle::block_on: the runtime shut down before the future completed"),
        }
    }

    /// This runtime's id, unique among the runtimes of the process. Like
    /// tokio's `Handle::id` (unstable in tokio).
    ///
    /// ```
    /// use insane_runtime::runtime::Runtime;
    /// let a = Runtime::builder().cores(1).build()?;
    /// let b = Runtime::builder().cores(1).build()?;
    /// assert_ne!(a.handle().id(), b.handle().id());
    /// assert_eq!(a.handle().id(), a.handle().clone().id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> Id {
        Id(self.inner.shared.cores[0].uid)
    }

    /// The number of cores of the runtime.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// assert_eq!(rt.handle().num_cores(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn num_cores(&self) -> usize {
        self.inner.shared.cores.len()
    }

    /// The runtime's metrics (tokio's `Handle::metrics`).
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// assert_eq!(rt.handle().metrics().num_workers(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(self.inner.shared.clone())
    }

    /// [`RuntimeFlavor::CurrentThread`] for a runtime of one core (all its
    /// tasks run on one thread, as on tokio's current-thread runtime),
    /// [`RuntimeFlavor::MultiThread`] otherwise. Code that checks the
    /// flavor before `block_in_place` can rely on it: both behave as on
    /// tokio for their flavor.
    ///
    /// ```
    /// use insane_runtime::runtime::{Runtime, RuntimeFlavor};
    /// let rt = Runtime::builder().cores(1).build()?;
    /// assert_eq!(rt.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn runtime_flavor(&self) -> RuntimeFlavor {
        if self.num_cores() == 1 {
            RuntimeFlavor::CurrentThread
        } else {
            RuntimeFlavor::MultiThread
        }
    }

    /// The name given with [`Builder::name`], if any.
    ///
    /// ```
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).name("svc").build()?;
    /// assert_eq!(rt.handle().name(), Some("svc"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.shared.name.as_deref()
    }
}

/// The index of the core running the caller, `None` outside a runtime
/// (tokio's `runtime::worker_index`; a worker is a core here, numbered from
/// 0, core 0 being the thread that calls `block_on`).
///
/// ```
/// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
/// assert_eq!(insane_runtime::runtime::worker_index(), None);
/// let on_core_1 = rt.block_on(async {
///     insane_runtime::task::spawn_on(1, async { insane_runtime::runtime::worker_index() }).await
/// });
/// assert_eq!(on_core_1.unwrap(), Some(1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn worker_index() -> Option<usize> {
    Runtime::current_core()
}

/// What kind of runtime a [`Handle`] belongs to (tokio's
/// `runtime::RuntimeFlavor`): insane has one kind, a thread per core, and
/// reports the tokio flavor it behaves like ([`Handle::runtime_flavor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeFlavor {
    /// One core: every task runs on the thread that calls `block_on`.
    CurrentThread,
    /// Several cores.
    MultiThread,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.id())
            .field("cores", &self.num_cores())
            .finish()
    }
}

/// Blocks this thread until `future` completes (its waker unparks us).
fn wait<F: Future>(future: F) -> F::Output {
    struct Unparker(std::thread::Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A runtime's id ([`Handle::id`]), unique within the process; like
/// tokio's `runtime::Id`.
///
/// ```
/// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
/// let id: insane_runtime::runtime::Id = rt.handle().id();
/// println!("runtime {id}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub(crate) u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The runtime context entered on this thread by [`Runtime::enter`] or
/// [`Handle::enter`]; dropping it restores the previous context. Not
/// `Send`: it must be dropped on the thread that entered.
///
/// ```
/// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
/// let guard: insane_runtime::runtime::EnterGuard<'_> = rt.enter();
/// assert!(insane_runtime::runtime::Handle::try_current().is_ok());
/// drop(guard);
/// assert!(insane_runtime::runtime::Handle::try_current().is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "the context is entered only while the guard lives"]
pub struct EnterGuard<'a> {
    _guard: context::HandleGuard,
    /// Borrows the handle, as tokio's guard does, and is `!Send`.
    _handle: PhantomData<(&'a Handle, Rc<()>)>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

/// Why [`Handle::try_current`] found no runtime; like tokio's
/// `runtime::TryCurrentError`.
///
/// ```
/// let e = insane_runtime::runtime::Handle::try_current().unwrap_err();
/// assert!(e.is_missing_context());
/// assert!(!e.is_thread_local_destroyed());
/// println!("{e}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TryCurrentError {
    destroyed: bool,
}

impl TryCurrentError {
    /// The thread is not a core and has no `enter` guard.
    ///
    /// ```
    /// let e = insane_runtime::runtime::Handle::try_current().unwrap_err();
    /// assert!(e.is_missing_context());
    /// ```
    pub fn is_missing_context(&self) -> bool {
        !self.destroyed
    }

    /// The thread's locals were being destroyed (the call came from a
    /// thread-local's destructor).
    ///
    /// ```
    /// let e = insane_runtime::runtime::Handle::try_current().unwrap_err();
    /// assert!(!e.is_thread_local_destroyed());
    /// ```
    pub fn is_thread_local_destroyed(&self) -> bool {
        self.destroyed
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.destroyed {
            f.write_str(
                "the insane runtime context is being destroyed: this thread's \
                 locals are being torn down",
            )
        } else {
            f.write_str(
                "there is no insane runtime on this thread: call this from a core \
                 (inside #[insane::main], #[insane::test] or Runtime::block_on) or \
                 while a Runtime::enter / Handle::enter guard is held",
            )
        }
    }
}

impl std::error::Error for TryCurrentError {}

/// The cause inside an [`io::Error`] that an I/O operation failed because
/// its runtime (its core's I/O driver) shut down: what
/// [`is_rt_shutdown_err`] recognises.
#[derive(Debug)]
struct RuntimeShutDown {
    what: &'static str,
}

impl fmt::Display for RuntimeShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl std::error::Error for RuntimeShutDown {}

/// The error of an I/O operation that cannot complete because its core's
/// runtime shut down; `what` says which part (e.g. "the io_uring driver of
/// this core has shut down"). Drivers return it, so that
/// [`is_rt_shutdown_err`] tells it from the operation's own errors.
pub fn shutdown_error(what: &'static str) -> io::Error {
    io::Error::other(RuntimeShutDown { what })
}

/// Whether `err` says that the runtime shut down under the operation, not
/// that the operation itself failed (tokio's
/// `runtime::is_rt_shutdown_err`): a task that sees it can stop quietly.
///
/// ```
/// use insane_runtime::runtime::{is_rt_shutdown_err, shutdown_error};
/// assert!(is_rt_shutdown_err(&shutdown_error("the I/O driver has shut down")));
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert!(!is_rt_shutdown_err(&refused));
/// assert!(!is_rt_shutdown_err(&std::io::Error::other("the I/O driver has shut down")));
/// ```
pub fn is_rt_shutdown_err(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<RuntimeShutDown>())
}

/// A handle to one core of a runtime, usable from any thread: spawn work
/// there (e.g. cleanup of per-core driver state owned by that core).
#[derive(Clone)]
pub struct CoreHandle {
    shared: Arc<CoreShared>,
}

impl CoreHandle {
    /// The core running the caller, or `None` outside a runtime.
    pub fn current() -> Option<Self> {
        context::with_core(|c| CoreHandle {
            shared: c.shared.clone(),
        })
    }

    /// The [`uid`](Self::uid) of the core the caller runs on, `None`
    /// outside a runtime: `CoreHandle::current().map(|c| c.uid())` without
    /// taking a handle (no reference count touched), for checks made on
    /// every message.
    ///
    /// ```
    /// use insane_runtime::runtime::{CoreHandle, Runtime};
    /// assert_eq!(CoreHandle::current_uid(), None);
    /// let rt = Runtime::builder().cores(1).build()?;
    /// rt.block_on(async {
    ///     assert_eq!(CoreHandle::current_uid(), CoreHandle::current().map(|c| c.uid()));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn current_uid() -> Option<u64> {
        context::with_core(|c| c.shared.uid)
    }

    /// The core's index in its runtime.
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// An id unique to this core across all runtimes of the process.
    pub fn uid(&self) -> u64 {
        self.shared.uid
    }

    /// Whether the core has shut down (its runtime was dropped): a future
    /// [`spawn`](Self::spawn)ed on it now is cancelled at once.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shut_down()
    }

    /// Whether the caller runs on this core.
    pub fn is_current(&self) -> bool {
        context::with_core(|c| c.shared.uid == self.shared.uid).unwrap_or(false)
    }

    /// Makes this core busy-poll instead of sleeping while the returned
    /// guard lives, whatever its [`IdlePolicy`]: what latency-critical
    /// flows on kernel drivers ask for (`resources = low` flows never do).
    ///
    /// ```
    /// # use insane_runtime::runtime::{CoreHandle, IdlePolicy, Runtime};
    /// # let rt = Runtime::builder().cores(1).idle(IdlePolicy::Park).build().unwrap();
    /// rt.block_on(async {
    ///     let _spin = CoreHandle::current().unwrap().hold_spin();
    ///     // ... a latency-critical flow runs here; the core never sleeps ...
    /// });
    /// ```
    pub fn hold_spin(&self) -> SpinGuard {
        self.shared.spin_holds.fetch_add(1, Ordering::Relaxed);
        // A parked core must notice at once.
        self.shared.wake();
        SpinGuard {
            shared: self.shared.clone(),
        }
    }

    /// Spawns a `Send` future on this core, from any thread. If the core has
    /// shut down, the future is dropped without running and the handle
    /// reports a cancellation.
    pub fn spawn<F>(&self, future: F) -> crate::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::task::spawn_send(self.shared.clone(), future)
    }
}

impl fmt::Debug for CoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreHandle")
            .field("index", &self.index())
            .finish()
    }
}

/// Keeps a core busy-polling while it lives; see [`CoreHandle::hold_spin`].
#[must_use = "the core spins only while the guard lives"]
pub struct SpinGuard {
    shared: Arc<CoreShared>,
}

impl SpinGuard {
    /// The index of the core this guard keeps spinning.
    pub fn core(&self) -> usize {
        self.shared.index
    }
}

impl Drop for SpinGuard {
    fn drop(&mut self) {
        self.shared.spin_holds.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for SpinGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinGuard")
            .field("core", &self.core())
            .finish()
    }
}
