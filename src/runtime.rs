//! The runtime: how many cores, pinned or not, how idle cores wait, and
//! which kernel I/O driver (io_uring or epoll) each core polls.
//!
//! ```
//! use insane::runtime::{Driver, IdlePolicy, Runtime};
//! let rt = Runtime::builder().cores(1).driver(Driver::Auto).idle(IdlePolicy::Park).build()?;
//! println!("running on {} ({})", rt.driver(), rt.driver_reason());
//! assert_eq!(rt.block_on(async { 1 + 1 }), 2);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

pub use insane_runtime::affinity;
pub use insane_runtime::driver::DriverKind;
pub use insane_runtime::runtime::{
    CoreHandle, CoreInit, CoreStop, EnterGuard, Handle, Id, IdlePolicy, ParkHook, RuntimeFlavor,
    RuntimeMetrics, SpinGuard, ThreadNameFn, TryCurrentError, is_rt_shutdown_err, worker_index,
};

use insane_net::config::{Config, RuntimeConfig};

use crate::task::JoinHandle;

pub use insane_net::config::Driver;

/// Configures and builds a [`Runtime`].
///
/// [`build`](Self::build) builds what the builder says and reads no file
/// and no variable: as with tokio's builder, a setting written in code is
/// final (tokio reads only `TOKIO_WORKER_THREADS`, as a default below
/// `worker_threads`). [`load_config`](Self::load_config) is
/// the explicit step that lays the process configuration over it — the
/// `[runtime]` section of `insane.toml` (the file `INSANE_CONFIG` names, or
/// `./insane.toml` when present), then the `INSANE_*` variables — so that
/// operators can re-run a binary or a test suite on another configuration
/// without recompiling. `#[insane::main]`, `#[insane::test]` and
/// [`Runtime::new`] take that step after their own settings; a program that
/// builds its runtime by hand decides whether to, and calls made after it
/// win over the configuration.
///
/// Precedence, lowest first: builder calls (or the macro's arguments), the
/// file, the environment.
///
/// As tokio's, the builder's methods take `&mut self`, so it can be set
/// up step by step as well as in one chain, and `build` can be called
/// more than once:
///
/// ```
/// let cores = 1;
/// let mut builder = insane::runtime::Builder::new_multi_thread();
/// builder.enable_all();
/// if cores > 0 {
///     builder.worker_threads(cores);
/// }
/// let rt = builder.build()?;
/// assert_eq!(rt.num_cores(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// ```
/// use insane::runtime::{Driver, Runtime};
/// // INSANE_CORES=2 or `[runtime] cores = 2` would replace the 1 here.
/// let rt = Runtime::builder().cores(1).driver(Driver::Auto).load_config()?.build()?;
/// assert!(rt.num_cores() >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    /// Every setting, `None` for the default: the builder calls and then
    /// the configuration layers laid over them.
    config: RuntimeConfig,
    hooks: Vec<CoreInit>,
    stop_hooks: Vec<CoreStop>,
    thread_stack_size: Option<usize>,
    name: Option<String>,
    thread_name_fn: Option<ThreadNameFn>,
    on_park: Option<ParkHook>,
    on_unpark: Option<ParkHook>,
    /// `spawn_blocking`'s pool: most threads, idle time before one exits
    /// (`None`: insane-runtime's defaults, 512 and 10 s, as tokio's).
    max_blocking_threads: Option<usize>,
    thread_keep_alive: Option<std::time::Duration>,
    /// Give every core a tokio context ([`tokio_compat`](Self::tokio_compat)).
    tokio_compat: bool,
    /// Time starts paused ([`start_paused`](Self::start_paused)).
    start_paused: bool,
    /// Tasks run by latency class ([`priority`](Self::priority)).
    priority: bool,
    /// [`event_interval`](Self::event_interval), `None` for the default.
    event_interval: Option<u32>,
    /// [`global_queue_interval`](Self::global_queue_interval).
    global_queue_interval: Option<u32>,
    /// [`max_io_events_per_tick`](Self::max_io_events_per_tick).
    io_events_per_tick: Option<usize>,
    /// [`max_io_events_per_busy_tick`](Self::max_io_events_per_busy_tick).
    io_events_per_busy_tick: Option<usize>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("core_start_hooks", &self.hooks.len())
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: one core per CPU of the allowed set, not pinned, the
    /// default idle policy, [`Driver::Auto`], no SQPOLL, threads named
    /// `insane-core-{core}`.
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new().build()?;
    /// assert!(rt.num_cores() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        Self {
            config: RuntimeConfig::default(),
            hooks: Vec::new(),
            stop_hooks: Vec::new(),
            thread_stack_size: None,
            name: None,
            thread_name_fn: None,
            on_park: None,
            on_unpark: None,
            max_blocking_threads: None,
            thread_keep_alive: None,
            tokio_compat: false,
            start_paused: false,
            priority: true,
            event_interval: None,
            global_queue_interval: None,
            io_events_per_tick: None,
            io_events_per_busy_tick: None,
        }
    }

    /// Whether cores run tasks by [`Latency`](crate::task::Latency) class
    /// (default `true`): critical tasks — those serving `latency =
    /// critical` QoS endpoints, or spawned with
    /// [`task::Builder::latency`](crate::task::Builder::latency) — before
    /// normal ones, with a slice of normal work between passes, and QoS
    /// endpoints' transmit paths yielding between bulk slices. `false`:
    /// one FIFO run queue per core, as before latency classes existed.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).priority(false).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn priority(&mut self, on: bool) -> &mut Self {
        self.priority = on;
        self
    }

    /// Starts the runtime with time paused, as `time::pause()` at the
    /// start of the first `block_on` would (tokio's
    /// `Builder::start_paused`; what `#[insane::test(start_paused = true)]`
    /// does): timers complete as soon as every task waits, `Instant::now()`
    /// moves only when time advances. Paused time needs a runtime of one
    /// core: `build` refuses more, naming both settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = insane::runtime::Runtime::builder().cores(1).start_paused(true).build()?;
    /// rt.block_on(async {
    ///     let start = insane::time::Instant::now();
    ///     insane::time::sleep(Duration::from_secs(3600)).await; // at once
    ///     assert_eq!(start.elapsed(), Duration::from_secs(3600));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start_paused(&mut self, paused: bool) -> &mut Self {
        self.start_paused = paused;
        self
    }

    /// Gives every core a tokio context, so crates that only run on tokio
    /// (reqwest, sqlx, redis, hyper-util's `TokioExecutor`/`TokioTimer`:
    /// anything that calls `tokio::spawn`, `tokio::time` or `tokio::net`)
    /// work inside insane tasks (feature `tokio-compat`).
    ///
    /// The runtime then owns a small tokio runtime (one worker thread, I/O
    /// and timers enabled) and enters it on every core: what those crates
    /// spawn runs on tokio's worker, their sockets and timers are driven
    /// by tokio's reactor, and insane tasks that await them are woken
    /// across threads. The application's own hot path stays on insane.
    /// The cost: one more thread, and a cross-thread wake-up (a few µs)
    /// for every tokio event an insane task waits on.
    ///
    /// ```
    /// # #[cfg(feature = "tokio-compat")] {
    /// let rt = insane::runtime::Runtime::builder().cores(1).tokio_compat(true).build()?;
    /// let answer = rt.block_on(async {
    ///     // A crate's internal tokio::spawn, awaited from an insane task.
    ///     tokio::spawn(async { 40 + 2 }).await.unwrap()
    /// });
    /// assert_eq!(answer, 42);
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// Without it, such a crate panics with tokio's "there is no reactor
    /// running" (insane cannot intercept that message).
    pub fn tokio_compat(&mut self, on: bool) -> &mut Self {
        self.tokio_compat = on;
        self
    }

    /// The most threads `spawn_blocking` runs at once (default 512, as
    /// tokio); further closures wait for one. Not a `[runtime]` key.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).max_blocking_threads(4).build()?;
    /// let four = rt.block_on(async { insane::task::spawn_blocking(|| 2 + 2).await });
    /// assert_eq!(four.unwrap(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        self.max_blocking_threads = Some(n);
        self
    }

    /// How long an idle `spawn_blocking` thread waits for work before it
    /// exits (default 10 s, as tokio).
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = insane::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .thread_keep_alive(Duration::from_millis(100))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_keep_alive(&mut self, keep_alive: std::time::Duration) -> &mut Self {
        self.thread_keep_alive = Some(keep_alive);
        self
    }

    /// Number of cores (threads, including the one calling `block_on`).
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).build()?;
    /// assert_eq!(rt.num_cores(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cores(&mut self, n: usize) -> &mut Self {
        self.config.cores = Some(n);
        self
    }

    /// Pin core `i` to the `i`-th CPU of the process's allowed set.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).pin_cores(true).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pin_cores(&mut self, pin: bool) -> &mut Self {
        self.config.pin_cores = Some(pin);
        self
    }

    /// What idle cores do: spin, then park.
    ///
    /// ```
    /// use insane::runtime::{IdlePolicy, Runtime};
    /// let rt = Runtime::builder().cores(1).idle(IdlePolicy::Park).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn idle(&mut self, policy: IdlePolicy) -> &mut Self {
        self.config.idle = Some(policy);
        self
    }

    /// Prefix of worker thread names (`{name}-{core}`).
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).thread_name("svc").build()?;
    /// let name = rt.block_on(async {
    ///     insane::task::spawn_on(1, async { std::thread::current().name().map(String::from) }).await
    /// });
    /// assert_eq!(name.unwrap().as_deref(), Some("svc-1"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.config.thread_name = Some(name.into());
        self
    }

    /// The kernel I/O driver of every core.
    ///
    /// ```
    /// use insane::runtime::{Driver, DriverKind, Runtime};
    /// let rt = Runtime::builder().cores(1).driver(Driver::Epoll).build()?;
    /// assert_eq!(rt.driver(), DriverKind::Epoll);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn driver(&mut self, driver: Driver) -> &mut Self {
        self.config.driver = Some(driver);
        self
    }

    /// io_uring SQPOLL: a kernel thread polls the submission queue, saving
    /// a syscall per submission. Refused when fewer than 2 CPUs are usable.
    ///
    /// ```no_run
    /// let rt = insane::runtime::Runtime::builder().sqpoll(true).build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sqpoll(&mut self, on: bool) -> &mut Self {
        self.config.sqpoll = Some(on);
        self
    }

    /// Adds a hook run on every core's thread at start-up, after the I/O
    /// driver is installed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rt = insane::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .on_core_start(Arc::new(|core| {
    ///         println!("core {core} up");
    ///         Ok(())
    ///     }))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_core_start(&mut self, init: CoreInit) -> &mut Self {
        self.hooks.push(init);
        self
    }

    /// Adds a hook run on every core's thread when the runtime stops, after
    /// the core's tasks were dropped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rt = insane::runtime::Runtime::builder()
    ///     .cores(1)
    ///     .on_core_stop(Arc::new(|core| println!("core {core} down")))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_core_stop(&mut self, hook: CoreStop) -> &mut Self {
        self.stop_hooks.push(hook);
        self
    }

    /// Stack size of the threads the runtime starts for cores `1..n`
    /// (core 0 is the caller's thread). tokio's `thread_stack_size`.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).thread_stack_size(8 << 20).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Names the runtime ([`Handle::name`]). tokio's `Builder::name`.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// tokio's `Builder::new_current_thread()`: a runtime of one core,
    /// the thread that calls `block_on` (`Builder::new().cores(1)`).
    ///
    /// ```
    /// // Before: tokio::runtime::Builder::new_current_thread().enable_all().build()?
    /// let rt = insane::runtime::Builder::new_current_thread().enable_all().build()?;
    /// assert_eq!(rt.num_cores(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_current_thread() -> Self {
        let mut builder = Self::new();
        builder.cores(1);
        builder
    }

    /// tokio's `Builder::new_multi_thread()`: one core per CPU of the
    /// allowed set ([`Builder::new`]). Each core runs its own tasks; see
    /// `docs/differences-from-tokio.md` for how that differs from tokio's
    /// work-stealing pool.
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    /// assert_eq!(rt.num_cores(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_multi_thread() -> Self {
        Self::new()
    }

    /// tokio's `worker_threads`: the number of cores. Unlike tokio's
    /// workers, the thread that calls `block_on` is one of them (core 0),
    /// so `worker_threads(4)` runs tasks on 4 threads in all.
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        self.cores(n)
    }

    /// tokio's `enable_all`: returns the builder unchanged, since every
    /// insane core always has its I/O driver and timers.
    pub fn enable_all(&mut self) -> &mut Self {
        self
    }

    /// tokio's `enable_io`: I/O is always enabled (see
    /// [`enable_all`](Self::enable_all)).
    pub fn enable_io(&mut self) -> &mut Self {
        self
    }

    /// tokio's `enable_time`: timers are always enabled (see
    /// [`enable_all`](Self::enable_all)).
    pub fn enable_time(&mut self) -> &mut Self {
        self
    }

    /// tokio's `event_interval`: how many tasks a core runs before it
    /// polls its I/O driver, timers and the tasks sent from other threads
    /// again (default 64; tokio's 61). `build` refuses 0.
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new_current_thread().event_interval(16).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn event_interval(&mut self, tasks: u32) -> &mut Self {
        self.event_interval = Some(tasks);
        self
    }

    /// tokio's `global_queue_interval`: how many tasks a core runs between
    /// two looks at the tasks sent to it from other threads. insane has no
    /// global queue; each core has its own injection queue (tasks spawned
    /// or woken from other threads), and every `tasks` tasks run, the
    /// oldest task there runs next, ahead of the core's own ready tasks.
    /// Unset (the default), a core takes its injected tasks once per turn
    /// (every [`event_interval`](Self::event_interval) tasks), behind its
    /// ready ones. `build` refuses 0 (tokio panics).
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .global_queue_interval(31)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn global_queue_interval(&mut self, tasks: u32) -> &mut Self {
        self.global_queue_interval = Some(tasks);
        self
    }

    /// tokio's `max_io_events_per_tick`: how many I/O events a core's
    /// driver processes per poll (epoll events per `epoll_wait`, io_uring
    /// completions per reap); the rest wait in the kernel for the next
    /// poll. Unset, each driver keeps its default (epoll 256, io_uring
    /// 2048; tokio's is 1024). Also the busy limit unless
    /// [`max_io_events_per_busy_tick`](Self::max_io_events_per_busy_tick)
    /// is set. `build` refuses 0 (tokio panics).
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new_current_thread()
    ///     .enable_io()
    ///     .max_io_events_per_tick(1024)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_io_events_per_tick(&mut self, events: usize) -> &mut Self {
        self.io_events_per_tick = Some(events);
        self
    }

    /// tokio's `max_io_events_per_busy_tick`: how many I/O events a core's
    /// driver processes when it polls while the core still has tasks to
    /// run (a core with nothing to run waits in its driver and takes up
    /// to [`max_io_events_per_tick`](Self::max_io_events_per_tick)). A
    /// small busy batch bounds the tasks one poll wakes ahead of those
    /// already ready. Default: the per-tick limit. `build` refuses 0.
    ///
    /// ```
    /// let rt = insane::runtime::Builder::new_current_thread()
    ///     .enable_io()
    ///     .max_io_events_per_tick(128)
    ///     .max_io_events_per_busy_tick(8)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn max_io_events_per_busy_tick(&mut self, events: usize) -> &mut Self {
        self.io_events_per_busy_tick = Some(events);
        self
    }

    /// tokio's `on_thread_start`: `f` runs on every core's thread at
    /// start-up (core 0's included: the thread that builds the runtime).
    pub fn on_thread_start(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_core_start(Arc::new(move |_core| {
            f();
            Ok(())
        }))
    }

    /// tokio's `thread_name_fn`: `f` names each thread the runtime starts
    /// (cores `1..n`; core 0 is the caller's thread and keeps its name).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static N: AtomicUsize = AtomicUsize::new(0);
    /// let rt = insane::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .thread_name_fn(|| format!("svc-{}", N.fetch_add(1, Ordering::SeqCst)))
    ///     .build()?;
    /// let name = rt.block_on(async {
    ///     insane::task::spawn_on(1, async { std::thread::current().name().map(String::from) }).await
    /// });
    /// assert_eq!(name.unwrap().as_deref(), Some("svc-0"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_name_fn(&mut self, f: impl Fn() -> String + Send + Sync + 'static) -> &mut Self {
        self.thread_name_fn = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_park`: `f` runs on a core's thread just before
    /// it parks (sleeps because it has nothing to do). Busy-polling cores
    /// park rarely.
    pub fn on_thread_park(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_park = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_unpark`: `f` runs on a core's thread just after
    /// a park ends.
    pub fn on_thread_unpark(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_unpark = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_stop`: `f` runs on every core's thread when the
    /// runtime stops ([`on_core_stop`](Self::on_core_stop)).
    pub fn on_thread_stop(&mut self, f: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.on_core_stop(Arc::new(move |_core| f()))
    }

    /// Lays a `[runtime]` configuration over the builder: every key
    /// `config` sets replaces the builder's value, the others stay.
    /// [`load_config`](Self::load_config) is this with the process's
    /// configuration; call this one with a configuration read another way.
    ///
    /// ```
    /// use insane::config::Config;
    /// use insane::runtime::Runtime;
    /// let file = Config::from_toml_str("[runtime]\ncores = 2\n", "svc.toml")?;
    /// let rt = Runtime::builder().cores(1).with_config(&file.runtime).build()?;
    /// assert_eq!(rt.num_cores(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_config(&mut self, config: &RuntimeConfig) -> &mut Self {
        self.config.override_with(config);
        self
    }

    /// Lays the process's runtime configuration over the builder: the
    /// `[runtime]` section of `insane.toml` (the file named by
    /// `INSANE_CONFIG`, else `./insane.toml` if it exists, none if
    /// `INSANE_CONFIG` is empty), then the `INSANE_RUNTIME_*` variables and
    /// their aliases (`INSANE_CORES`, `INSANE_DRIVER`, `INSANE_PIN_CORES`,
    /// `INSANE_SQPOLL`), each overriding what is below it. Without a file
    /// or variables the builder is unchanged. The keys and variables are
    /// listed in [`RuntimeConfig`]; the whole
    /// file and every `INSANE_*` section variable are checked, so a mistake
    /// in any of them stops the start.
    ///
    /// `#[insane::main]`, `#[insane::test]` and [`Runtime::new`] call this.
    ///
    /// ```
    /// use insane::runtime::Runtime;
    /// let rt = Runtime::builder().cores(1).load_config()?.build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The file cannot be read, or a value in it or in a variable is
    /// invalid; the error names the file, line and key, or the variable
    /// ([`Config::load`]).
    pub fn load_config(&mut self) -> io::Result<&mut Self> {
        let loaded = Config::load()?.runtime;
        Ok(self.with_config(&loaded))
    }

    /// Lays the `[runtime]` variables alone over the builder
    /// (`INSANE_CORES` or `INSANE_RUNTIME_CORES`, `INSANE_DRIVER` or
    /// `INSANE_RUNTIME_DRIVER`, `INSANE_PIN_CORES`, `INSANE_SQPOLL`, ...;
    /// see [`RuntimeConfig`]), without a
    /// file. [`load_config`](Self::load_config) reads the file too.
    ///
    /// ```
    /// use insane::runtime::Runtime;
    /// // INSANE_DRIVER=epoll would make this runtime use epoll.
    /// let rt = Runtime::builder().cores(1).apply_env()?.build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// A variable whose value does not parse; the error names it.
    pub fn apply_env(&mut self) -> io::Result<&mut Self> {
        let env = RuntimeConfig::default()
            .apply_env(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))?;
        Ok(self.with_config(&env))
    }

    /// What the builder holds: its calls and the configuration laid over
    /// them (for this crate's tests).
    #[cfg(test)]
    pub(crate) fn settings(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Builds a [`LocalRuntime`]: tokio's `build_local`, for a builder of
    /// one core ([`new_current_thread`](Self::new_current_thread)).
    ///
    /// ```
    /// use insane::runtime::{Builder, LocalOptions};
    /// let rt = Builder::new_current_thread().enable_all().build_local(LocalOptions::default())?;
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// More than one core configured (the error names the count), or as
    /// [`build`](Self::build).
    pub fn build_local(&mut self, _options: LocalOptions) -> io::Result<LocalRuntime> {
        match self.config.cores {
            None | Some(1) => {}
            Some(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a LocalRuntime runs on one thread, but cores = {n}"),
                ));
            }
        }
        let mut one_core = self.clone();
        one_core.cores(1);
        Ok(LocalRuntime {
            rt: one_core.build()?,
        })
    }

    /// Chooses the driver, starts every core with it, and returns the
    /// runtime.
    ///
    /// # Errors
    /// The requested driver is unavailable (the error says why), or a core
    /// fails to start.
    pub fn build(&mut self) -> io::Result<Runtime> {
        // Destructured so that every key of `[runtime]` is applied here.
        let RuntimeConfig {
            cores,
            driver,
            pin_cores,
            sqpoll,
            idle,
            thread_name,
        } = self.config.clone();
        if self.start_paused && cores != Some(1) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "start_paused needs a runtime of one core (paused time is one core's clock), \
                     but cores = {}",
                    cores.map_or_else(
                        || "the default (one per CPU)".to_string(),
                        |n| n.to_string()
                    )
                ),
            ));
        }
        let sqpoll = sqpoll.unwrap_or(false);
        let (kind, reason) = resolve_driver(driver.unwrap_or_default(), sqpoll)?;
        tracing::info!(driver = %kind, reason = %reason, "insane I/O driver chosen");
        let mut inner = insane_runtime::runtime::Builder::new().priority(self.priority);
        if let Some(tasks) = self.event_interval {
            inner = inner.event_interval(tasks);
        }
        if let Some(tasks) = self.global_queue_interval {
            inner = inner.global_queue_interval(tasks);
        }
        if let Some(events) = self.io_events_per_tick {
            inner = inner.max_io_events_per_tick(events);
        }
        if let Some(events) = self.io_events_per_busy_tick {
            inner = inner.max_io_events_per_busy_tick(events);
        }
        if let Some(n) = cores {
            inner = inner.cores(n);
        }
        if let Some(pin) = pin_cores {
            inner = inner.pin_cores(pin);
        }
        if let Some(policy) = idle {
            inner = inner.idle(policy);
        }
        if let Some(name) = thread_name {
            inner = inner.thread_name(name);
        }
        let tokio = if self.tokio_compat {
            let tokio = tokio_compat::start()?;
            inner = inner.on_core_start(tokio_compat::enter_on_core(&tokio));
            Some(tokio)
        } else {
            None
        };
        if let Some(n) = self.max_blocking_threads {
            inner = inner.max_blocking_threads(n);
        }
        if let Some(d) = self.thread_keep_alive {
            inner = inner.thread_keep_alive(d);
        }
        // The driver must exist before the user's hooks run.
        let install: CoreInit = match kind {
            DriverKind::Uring => Arc::new(move |_core| uring::install(sqpoll)),
            DriverKind::Epoll => Arc::new(|_core| insane_epoll::install_on_current_core()),
        };
        inner = inner.on_core_start(install);
        for hook in self.hooks.iter().cloned() {
            inner = inner.on_core_start(hook);
        }
        for hook in self.stop_hooks.iter().cloned() {
            inner = inner.on_core_stop(hook);
        }
        if let Some(bytes) = self.thread_stack_size {
            inner = inner.thread_stack_size(bytes);
        }
        if let Some(name) = self.name.clone() {
            inner = inner.name(name);
        }
        if let Some(f) = self.thread_name_fn.clone() {
            inner = inner.thread_name_fn(f);
        }
        if let Some(f) = self.on_park.clone() {
            inner = inner.on_core_park(f);
        }
        if let Some(f) = self.on_unpark.clone() {
            inner = inner.on_core_unpark(f);
        }
        Ok(Runtime {
            inner: inner.build()?,
            driver: kind,
            reason,
            tokio,
            pause_at_start: std::cell::Cell::new(self.start_paused),
        })
    }
}

fn resolve_driver(requested: Driver, sqpoll: bool) -> io::Result<(DriverKind, String)> {
    resolve_driver_with(requested, sqpoll, uring::probe)
}

/// The driver policy, with the io_uring probe as a parameter so tests can
/// make it fail the way a seccomp filter or `kernel.io_uring_disabled` does.
fn resolve_driver_with(
    requested: Driver,
    sqpoll: bool,
    uring_probe: impl Fn() -> io::Result<()>,
) -> io::Result<(DriverKind, String)> {
    match requested {
        Driver::Epoll => {
            if sqpoll {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "SQPOLL is an io_uring feature; it cannot be used with the epoll driver",
                ));
            }
            insane_epoll::probe()?;
            Ok((DriverKind::Epoll, "requested (driver = \"epoll\")".into()))
        }
        Driver::Uring => match uring_probe() {
            Ok(_) => Ok((DriverKind::Uring, "requested (driver = \"uring\")".into())),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("io_uring requested but unavailable: {e}"),
            )),
        },
        Driver::Auto => match uring_probe() {
            Ok(_) => Ok((DriverKind::Uring, "io_uring is available (auto)".into())),
            Err(e) if !sqpoll => {
                tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll");
                insane_epoll::probe()?;
                Ok((
                    DriverKind::Epoll,
                    format!("io_uring unavailable ({e}); fell back to epoll"),
                ))
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("SQPOLL requested but io_uring is unavailable: {e}"),
            )),
        },
    }
}

/// The io_uring driver as the facade uses it.
mod uring {
    use std::io;

    /// Whether io_uring can be used here; the error says why not.
    pub(super) fn probe() -> io::Result<()> {
        insane_uring::probe().map(|_| ())
    }

    /// Installs the io_uring driver on the current core.
    pub(super) fn install(sqpoll: bool) -> io::Result<()> {
        insane_uring::install_on_current_core(&insane_uring::UringConfig {
            sqpoll,
            ..Default::default()
        })
    }
}

/// A thread-per-core runtime with a kernel I/O driver on every core.
///
/// Core 0 is the thread that calls [`block_on`](Runtime::block_on); the
/// other cores are threads the runtime owns. Dropping the runtime stops
/// them and drops their pending tasks on their own cores; then it waits for
/// running blocking closures ([`shutdown_timeout`](Runtime::shutdown_timeout)
/// and [`shutdown_background`](Runtime::shutdown_background) wait less).
/// [`handle`](Runtime::handle) reaches it from other threads.
pub struct Runtime {
    /// First: the cores stop before the tokio runtime they may use.
    inner: insane_runtime::runtime::Runtime,
    driver: DriverKind,
    reason: String,
    /// The tokio runtime of [`Builder::tokio_compat`].
    tokio: Option<tokio_compat::TokioRuntime>,
    /// [`Builder::start_paused`], until the first `block_on` pauses.
    pause_at_start: std::cell::Cell<bool>,
}

impl Runtime {
    /// A [`Builder`] with defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A runtime with the defaults, after the process configuration
    /// (`insane.toml`'s `[runtime]`, then `INSANE_*` variables; see
    /// [`Builder::load_config`]): what `#[insane::main]` without
    /// arguments builds.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::new()?;
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Builder::load_config`] and [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new().load_config()?.build()
    }

    /// Runs `future` to completion on core 0 (this thread).
    ///
    /// # Panics
    /// When called from inside a runtime, or when `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // Core 0 runs on this thread: the tokio context only while it does.
        let _tokio = self.tokio.as_ref().map(tokio_compat::enter);
        if self.pause_at_start.replace(false) {
            return self.inner.block_on(async {
                insane_runtime::time::pause();
                future.await
            });
        }
        self.inner.block_on(future)
    }

    /// Spawns a `Send` future on the runtime: `rt.handle().spawn(future)`,
    /// as in tokio. From a thread that is not one of its cores, the task
    /// goes to a worker core (`1..n`) chosen round-robin and runs at once,
    /// without `block_on`; on a core of this runtime it stays on that core.
    /// A 1-core runtime has only core 0, which runs while `block_on` runs.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.spawn(async move { tx.send("ran on a worker core").unwrap() });
    /// assert_eq!(rx.recv().unwrap(), "ran on a worker core");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future)
    }

    /// Spawns a `!Send` future on core 0, the thread that owns the runtime;
    /// it runs while [`block_on`](Self::block_on) runs (tokio's
    /// `LocalRuntime::spawn_local`; see [`LocalRuntime`]).
    ///
    /// ```
    /// use std::rc::Rc;
    /// let rt = insane::runtime::Runtime::builder().cores(1).build()?;
    /// let shared = Rc::new(21);
    /// let copy = shared.clone();
    /// let task = rt.spawn_local(async move { *copy * 2 });
    /// assert_eq!(rt.block_on(task).unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.inner.spawn_local(future)
    }

    /// Runs the blocking closure `f` on the runtime's blocking thread pool,
    /// from any thread (`insane::task::spawn_blocking`'s pool and rules).
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).build()?;
    /// let task = rt.spawn_blocking(|| 2 + 2);
    /// assert_eq!(rt.block_on(task).unwrap(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.spawn_blocking(f)
    }

    /// A [`Handle`] to this runtime, usable from any thread (see its doc for
    /// where its tasks run and how its `block_on` differs from tokio's).
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).build()?;
    /// let handle = rt.handle().clone();
    /// let n = std::thread::spawn(move || handle.block_on(async { 6 * 7 })).join().unwrap();
    /// assert_eq!(n, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> &Handle {
        self.inner.handle()
    }

    /// Enters the runtime's context on this thread until the guard is
    /// dropped: `insane::spawn`, `spawn_blocking` and `Handle::current()`
    /// then work on a thread that is not a core (tasks go to worker cores,
    /// round-robin). It does not make the thread a core (timers and sockets
    /// still need one), and it does not enter the
    /// [`tokio_compat`](Builder::tokio_compat) bridge's tokio context.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(2).build()?;
    /// let _guard = rt.enter();
    /// let task = insane::spawn(async { "spawned off the runtime's threads" });
    /// assert_eq!(rt.handle().block_on(task).unwrap(), "spawned off the runtime's threads");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.inner.enter()
    }

    /// Stops the cores (pending tasks are cancelled and dropped on their own
    /// core), cancels blocking closures that have not started, and waits at
    /// most `duration` for the running ones; those still running finish on
    /// their own. Like tokio's `Runtime::shutdown_timeout`. The
    /// [`tokio_compat`](Builder::tokio_compat) bridge, if any, is then
    /// shut down without waiting for its tasks.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let rt = insane::runtime::Runtime::builder().cores(1).build()?;
    /// rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(500)));
    /// let start = Instant::now();
    /// rt.shutdown_timeout(Duration::from_millis(10));
    /// assert!(start.elapsed() < Duration::from_millis(400));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(self, duration: std::time::Duration) {
        // The cores stop before the tokio runtime they may use.
        let Runtime { inner, tokio, .. } = self;
        inner.shutdown_timeout(duration);
        tokio_compat::stop(tokio);
    }

    /// [`shutdown_timeout`](Self::shutdown_timeout) without waiting for
    /// blocking closures, as tokio's `Runtime::shutdown_background`.
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).build()?;
    /// rt.spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    /// rt.shutdown_background();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_background(self) {
        let Runtime { inner, tokio, .. } = self;
        inner.shutdown_background();
        tokio_compat::stop(tokio);
    }

    /// The number of cores of this runtime.
    pub fn num_cores(&self) -> usize {
        self.inner.num_cores()
    }

    /// The runtime's metrics (tokio's `Runtime::metrics`).
    ///
    /// ```
    /// let rt = insane::runtime::Runtime::builder().cores(1).build()?;
    /// assert_eq!(rt.metrics().num_workers(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> RuntimeMetrics {
        self.inner.metrics()
    }

    /// The kernel I/O driver every core runs.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Why that driver was chosen (e.g. the io_uring error that made
    /// `Auto` fall back to epoll).
    pub fn driver_reason(&self) -> &str {
        &self.reason
    }

    /// The index of the core running the caller, or `None` outside a
    /// runtime.
    pub fn current_core() -> Option<usize> {
        insane_runtime::runtime::Runtime::current_core()
    }

    /// The number of cores of the runtime the caller runs on, or `None`
    /// outside a runtime.
    pub fn cores() -> Option<usize> {
        insane_runtime::runtime::Runtime::cores()
    }
}

/// So that `LocalSet::block_on(&rt, ..)` takes this runtime, as tokio's.
impl insane_runtime::task::BlockOn for Runtime {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        Runtime::block_on(self, future)
    }
}

/// Options of [`Builder::build_local`] (tokio's `LocalOptions`; none yet).
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct LocalOptions {}

/// A runtime of one core that also spawns `!Send` futures from outside
/// `block_on` (tokio's `runtime::LocalRuntime`). Every insane [`Runtime`]
/// can do that on core 0 ([`Runtime::spawn_local`]); this type is the
/// tokio name for a one-core one.
///
/// ```
/// use std::rc::Rc;
/// use insane::runtime::LocalRuntime;
/// let rt = LocalRuntime::new()?;
/// let shared = Rc::new(String::from("not Send"));
/// let copy = shared.clone();
/// let task = rt.spawn_local(async move { copy.len() });
/// assert_eq!(rt.block_on(task).unwrap(), 8);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct LocalRuntime {
    rt: Runtime,
}

impl LocalRuntime {
    /// A one-core runtime with the defaults and the process configuration
    /// (as [`Runtime::new`], but one core whatever the configuration says,
    /// as tokio's ignores `TOKIO_WORKER_THREADS` here).
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new()
            .load_config()?
            .cores(1)
            .build_local(LocalOptions::default())
    }

    /// Spawns a `!Send` future; it runs while [`block_on`](Self::block_on)
    /// runs.
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.rt.spawn_local(future)
    }

    /// Runs `future` to completion on this thread, with the spawned tasks.
    ///
    /// # Panics
    /// Inside a runtime, or when `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// Runs the blocking closure `f` on the blocking thread pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.rt.spawn_blocking(f)
    }

    /// The runtime's [`Handle`].
    pub fn handle(&self) -> &Handle {
        self.rt.handle()
    }

    /// Enters the runtime's context on this thread ([`Runtime::enter`]).
    pub fn enter(&self) -> EnterGuard<'_> {
        self.rt.enter()
    }

    /// The runtime's metrics.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.rt.metrics()
    }

    /// Stops the runtime, waiting at most `duration` for running blocking
    /// closures ([`Runtime::shutdown_timeout`]).
    pub fn shutdown_timeout(self, duration: std::time::Duration) {
        self.rt.shutdown_timeout(duration)
    }

    /// Stops the runtime without waiting for blocking closures
    /// ([`Runtime::shutdown_background`]).
    pub fn shutdown_background(self) {
        self.rt.shutdown_background()
    }
}

impl insane_runtime::task::BlockOn for LocalRuntime {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.num_cores())
            .field("driver", &self.driver)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    /// The process configuration a file holding `text` and the variables
    /// `vars` make, read as `Config::load` reads them (without touching
    /// the process's environment, which other tests share).
    fn process_config(text: &str, vars: &[(&str, &str)]) -> io::Result<RuntimeConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Config::from_toml_str(text, "insane.toml")?
            .apply_env(|name| vars.get(name).cloned())?
            .runtime)
    }

    fn code() -> Builder {
        let mut b = Runtime::builder();
        b.cores(1).driver(Driver::Uring).thread_name("code");
        b
    }

    #[test]
    fn the_file_overrides_the_builder() {
        let file = process_config("[runtime]\ncores = 4\ndriver = \"epoll\"\n", &[]).unwrap();
        let mut b = code();
        b.with_config(&file);
        assert_eq!(b.settings().cores, Some(4));
        assert_eq!(b.settings().driver, Some(Driver::Epoll));
        assert_eq!(
            b.settings().thread_name.as_deref(),
            Some("code"),
            "not in the file: the builder's"
        );
    }

    #[test]
    fn the_environment_overrides_the_file_and_the_builder() {
        let config = process_config(
            "[runtime]\ncores = 4\ndriver = \"epoll\"\n",
            &[("INSANE_CORES", "2"), ("INSANE_RUNTIME_THREAD_NAME", "env")],
        )
        .unwrap();
        let mut b = code();
        b.with_config(&config);
        assert_eq!(b.settings().cores, Some(2), "environment over file");
        assert_eq!(
            b.settings().driver,
            Some(Driver::Epoll),
            "file over builder"
        );
        assert_eq!(
            b.settings().thread_name.as_deref(),
            Some("env"),
            "environment over builder"
        );
    }

    #[test]
    fn without_file_or_variables_the_builder_is_kept() {
        let nothing = process_config("", &[]).unwrap();
        assert_eq!(nothing, RuntimeConfig::default());
        assert_eq!(code().with_config(&nothing).settings(), code().settings());
        assert_eq!(
            Builder::new().with_config(&nothing).settings(),
            &RuntimeConfig::default(),
            "the defaults stay the defaults"
        );
    }

    #[test]
    fn builder_calls_after_the_configuration_win() {
        let file = process_config("[runtime]\ncores = 4\n", &[]).unwrap();
        let mut b = Runtime::builder();
        b.with_config(&file).cores(1);
        assert_eq!(b.settings().cores, Some(1));
    }

    #[test]
    fn bad_configuration_is_named_before_any_runtime_starts() {
        let err = process_config("[runtime]\ndriver = \"xdp\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("insane.toml line 2, `runtime.driver`"),
            "{err}"
        );
        let err = process_config("", &[("INSANE_DRIVER", "xdp")]).unwrap_err();
        assert!(
            err.to_string().starts_with("INSANE_DRIVER=\"xdp\""),
            "{err}"
        );
    }

    #[test]
    fn build_applies_every_key_of_the_configuration() {
        let config = process_config(
            "[runtime]\ncores = 2\ndriver = \"epoll\"\npin_cores = false\nsqpoll = false\n\
             idle = \"park\"\nthread_name = \"from-file\"\n",
            &[],
        )
        .unwrap();
        let rt = code().with_config(&config).build().unwrap();
        assert_eq!(rt.num_cores(), 2);
        assert_eq!(rt.driver(), DriverKind::Epoll);
        let name = rt.block_on(async {
            crate::task::spawn_on(1, async { std::thread::current().name().map(String::from) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("from-file-1"));
    }

    fn eperm() -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc_eperm()))
    }

    fn libc_eperm() -> i32 {
        1 // EPERM: what io_uring_setup returns under kernel.io_uring_disabled=2
    }

    #[test]
    fn auto_falls_back_to_epoll_naming_the_io_uring_error() {
        let (kind, reason) = resolve_driver_with(Driver::Auto, false, eperm).unwrap();
        assert_eq!(kind, DriverKind::Epoll);
        assert!(reason.contains("fell back to epoll"), "{reason}");
        assert!(reason.contains("not permitted"), "{reason}");
    }

    #[test]
    fn auto_prefers_io_uring_when_it_works() {
        let (kind, _) = resolve_driver_with(Driver::Auto, false, || Ok(())).unwrap();
        assert_eq!(kind, DriverKind::Uring);
    }

    #[test]
    fn an_explicit_uring_request_fails_with_the_cause() {
        let err = resolve_driver_with(Driver::Uring, false, eperm).unwrap_err();
        assert!(
            err.to_string()
                .contains("io_uring requested but unavailable"),
            "{err}"
        );
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn sqpoll_needs_io_uring() {
        assert!(resolve_driver_with(Driver::Auto, true, eperm).is_err());
        assert!(resolve_driver_with(Driver::Epoll, true, || Ok(())).is_err());
    }

    #[test]
    fn driver_names_parse_and_bad_ones_are_named() {
        assert_eq!("uring".parse::<Driver>().unwrap(), Driver::Uring);
        assert_eq!("EPOLL".parse::<Driver>().unwrap(), Driver::Epoll);
        let err = "xdp".parse::<Driver>().unwrap_err();
        assert!(err.to_string().contains("\"xdp\""), "{err}");
    }

    #[test]
    fn start_paused_runs_timers_at_once_on_one_core_and_refuses_more() {
        let rt = Runtime::builder()
            .cores(1)
            .start_paused(true)
            .build()
            .unwrap();
        let elapsed = rt.block_on(async {
            let start = crate::time::Instant::now();
            crate::time::sleep(std::time::Duration::from_secs(86_400)).await;
            start.elapsed()
        });
        assert_eq!(elapsed, std::time::Duration::from_secs(86_400));
        let err = Runtime::builder()
            .cores(2)
            .start_paused(true)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("cores = 2"), "{err}");
    }
}

/// The tokio bridge of [`Builder::tokio_compat`].
mod tokio_compat {
    use std::io;

    use super::CoreInit;

    #[cfg(feature = "tokio-compat")]
    pub(super) type TokioRuntime = tokio::runtime::Runtime;

    /// Without the feature there is never a tokio runtime.
    #[cfg(not(feature = "tokio-compat"))]
    pub(super) enum TokioRuntime {}

    #[cfg(feature = "tokio-compat")]
    pub(super) fn start() -> io::Result<TokioRuntime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("insane-tokio-compat")
            .enable_all()
            .build()
            .map_err(|e| io::Error::new(e.kind(), format!("starting the tokio bridge: {e}")))
    }

    #[cfg(not(feature = "tokio-compat"))]
    pub(super) fn start() -> io::Result<TokioRuntime> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "tokio_compat needs insane's `tokio-compat` feature (insane = { features = [\"tokio-compat\"] })",
        ))
    }

    /// Enters the tokio runtime on every core's thread but core 0 (which
    /// runs on the caller's thread and enters in `block_on`), for the
    /// thread's life: the guard is never dropped, the thread ends with the
    /// runtime.
    #[cfg(feature = "tokio-compat")]
    pub(super) fn enter_on_core(tokio: &TokioRuntime) -> CoreInit {
        let handle = tokio.handle().clone();
        std::sync::Arc::new(move |core| {
            if core != 0 {
                std::mem::forget(handle.enter());
            }
            Ok(())
        })
    }

    #[cfg(not(feature = "tokio-compat"))]
    pub(super) fn enter_on_core(tokio: &TokioRuntime) -> CoreInit {
        match *tokio {}
    }

    /// Shuts the bridge down without waiting for its tasks (the cores,
    /// which used it, have stopped).
    #[cfg(feature = "tokio-compat")]
    pub(super) fn stop(tokio: Option<TokioRuntime>) {
        if let Some(tokio) = tokio {
            tokio.shutdown_background();
        }
    }

    #[cfg(not(feature = "tokio-compat"))]
    pub(super) fn stop(tokio: Option<TokioRuntime>) {
        if let Some(never) = tokio {
            match never {}
        }
    }

    #[cfg(feature = "tokio-compat")]
    pub(super) fn enter(tokio: &TokioRuntime) -> tokio::runtime::EnterGuard<'_> {
        tokio.enter()
    }

    #[cfg(not(feature = "tokio-compat"))]
    pub(super) fn enter(tokio: &TokioRuntime) {
        match *tokio {}
    }
}
