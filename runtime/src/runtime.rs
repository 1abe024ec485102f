//! [`Runtime`] and its [`Builder`]: how many cores, pinned or not, how idle
//! cores wait, and which reactor each core starts with.
//!
//! Core 0 is the thread that calls [`Runtime::block_on`]; cores `1..n` are
//! threads the runtime starts and joins when it is dropped.

use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use crate::affinity;
use crate::context;
use crate::core::{Core, CoreShared, RuntimeShared};

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
    init: Vec<CoreInit>,
    thread_name: String,
    max_blocking_threads: usize,
    thread_keep_alive: Duration,
}

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
            init: Vec::new(),
            thread_name: "insane-core".into(),
            max_blocking_threads: crate::task::DEFAULT_MAX_THREADS,
            thread_keep_alive: crate::task::DEFAULT_KEEP_ALIVE,
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
        let cores = (0..n)
            .map(CoreShared::new)
            .map(|r| r.map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(RuntimeShared {
            cores,
            shutdown: Default::default(),
            blocking: Arc::new(crate::task::BlockingPool::new(
                self.max_blocking_threads,
                self.thread_keep_alive,
                &self.thread_name,
            )),
        });
        let cpu_of = |i: usize| cpus.get(i % cpus.len().max(1)).copied();

        let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<()>)>();
        let mut threads = Vec::with_capacity(n.saturating_sub(1));
        for index in 1..n {
            let rt_shared = shared.clone();
            let init = self.init.clone();
            let idle = self.idle;
            let cpu = if self.pin_cores { cpu_of(index) } else { None };
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || {
                    let core = Core::new(rt_shared.cores[index].clone(), rt_shared.clone(), idle);
                    let started = start_core(&core, cpu, &init);
                    let ok = started.is_ok();
                    let _ = ready.send((index, started));
                    if ok {
                        core.run_worker();
                    }
                    core.shutdown();
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

        let core0 = Rc::new(Core::new(
            shared.cores[0].clone(),
            shared.clone(),
            self.idle,
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
        let runtime = Runtime {
            shared,
            core0,
            threads,
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
/// return, as tokio's does.
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
        self.core0.block_on(future)
    }

    /// Spawns a `Send` future on core 0; it runs while `block_on` runs.
    pub fn spawn<F>(&self, future: F) -> crate::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::task::spawn_send(self.shared.cores[0].clone(), future)
    }

    #[cfg(test)]
    pub(crate) fn blocking_pool(&self) -> &crate::task::BlockingPool {
        &self.shared.blocking
    }

    /// The number of cores of this runtime.
    pub fn num_cores(&self) -> usize {
        self.shared.cores.len()
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
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for core in &self.shared.cores {
            core.wake();
        }
        self.core0.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Blocking closures that have not started are cancelled; running
        // ones are waited for (tokio's behaviour).
        self.shared.blocking.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.num_cores())
            .finish()
    }
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
