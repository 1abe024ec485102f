//! Latency classes of tasks: [`Latency`] (and the scheduling rules),
//! [`Builder`] (spawn with a class) and [`set_latency`] (change the
//! current task's class).

use std::fmt;
use std::future::Future;
use std::io;

use super::JoinHandle;
use crate::context;

/// How much a task's (or a flow's) latency matters. The same type is
/// `insane::qos::Latency`, the latency axis of a QoS: one concept for
/// flows and for the tasks that serve them.
///
/// Each core keeps two run queues when its runtime has priority on (the
/// default, [`runtime::Builder::priority`](crate::runtime::Builder::priority)):
///
/// - **Critical tasks run first.** The core runs every ready critical
///   task (a *pass*: each at most once, so a critical task that keeps
///   waking itself — a busy-polling receive — cannot hold the core), then
///   **one** normal task, then the next pass. A critical task that becomes
///   ready therefore waits for at most one normal task's poll, and that
///   poll is bounded by the [cooperative budget](super::coop) (128 units)
///   for cooperative futures.
/// - **Normal tasks are not starved.** Between two passes one normal task
///   runs, whatever the critical tasks do; at most 16 normal tasks run
///   before the core polls its reactors and timers again (a critical
///   flow's completion or datagram is seen after one such slice of
///   normal work, not after a whole turn of 64 tasks).
///
/// With priority off every task goes to one FIFO queue (the behaviour
/// before classes existed; the benchmarks' "priority off" columns).
///
/// # Where a task's class comes from
///
/// - [`Builder::latency`], at spawn.
/// - Otherwise **inherited**: a task spawned (`spawn`, `spawn_local`,
///   `spawn_on`) from inside a critical task is critical; from anywhere
///   else (a normal task, the `block_on` future, another thread) normal.
/// - [`set_latency`] from inside the task. insane's QoS endpoints call it:
///   a task that sends or receives on a `latency = critical` endpoint
///   becomes critical, as do the endpoint's own tasks (the core's transmit
///   task, its per-flow drain tasks); see `insane::qos`.
///
/// ```
/// use insane_runtime::task::{self, Latency};
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let critical = task::Builder::new()
///     .latency(Latency::Critical)
///     .spawn(async { task::latency() })
///     .unwrap();
/// assert_eq!(critical.await.unwrap(), Latency::Critical);
/// assert_eq!(task::spawn(async { task::latency() }).await.unwrap(), Latency::Normal);
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Latency {
    /// Microseconds matter. A critical task runs before every normal task
    /// of its core; a critical flow gets kernel bypass or busy polling.
    Critical,
    /// Ordinary latency.
    #[default]
    Normal,
}

impl Latency {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Latency::Critical => 1,
            Latency::Normal => 0,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Latency {
        if v == 1 {
            Latency::Critical
        } else {
            Latency::Normal
        }
    }

    /// `"critical"` or `"normal"`.
    ///
    /// ```
    /// assert_eq!(insane_runtime::task::Latency::Critical.as_str(), "critical");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Latency::Critical => "critical",
            Latency::Normal => "normal",
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current task's latency class (`Normal` outside a task).
///
/// ```
/// assert_eq!(insane_runtime::task::latency(), insane_runtime::task::Latency::Normal);
/// ```
pub fn latency() -> Latency {
    context::with_core(|c| c.current_latency.get()).unwrap_or_default()
}

/// Sets the current task's latency class from now on: its next wake-ups
/// go to the matching run queue, and tasks it spawns inherit it. Outside
/// a task (the `block_on` future, another thread) it does nothing.
///
/// ```
/// use insane_runtime::task::{self, Latency};
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let t = task::spawn(async {
///     task::set_latency(Latency::Critical);
///     task::yield_now().await;
///     task::latency()
/// });
/// assert_eq!(t.await.unwrap(), Latency::Critical);
/// # });
/// ```
pub fn set_latency(latency: Latency) {
    context::with_core(|c| {
        if c.current_task.get().is_some() {
            c.current_latency.set(latency);
            c.latency_changed.set(true);
        }
    });
}

/// Spawns tasks with options; like tokio's `task::Builder` (whose
/// `spawn*` also return `io::Result`), with a latency class instead of a
/// name.
///
/// ```
/// use insane_runtime::task::{Builder, Latency};
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let handle = Builder::new().latency(Latency::Critical).spawn(async { 1 }).unwrap();
/// assert_eq!(handle.await.unwrap(), 1);
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Builder {
    latency: Option<Latency>,
}

impl Builder {
    /// A builder whose tasks inherit the spawning task's class.
    pub fn new() -> Self {
        Self::default()
    }

    /// The class of the tasks spawned by this builder (instead of the
    /// spawning task's).
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Like [`spawn`](super::spawn), on the current core.
    ///
    /// # Errors
    /// Outside an insane runtime (`Other`).
    pub fn spawn<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = context::with_core(|c| c.shared.clone())
            .ok_or_else(|| outside("task::Builder::spawn"))?;
        Ok(super::spawn_send_with(shared, future, self.latency))
    }

    /// Like [`spawn_local`](super::spawn_local), but the task always
    /// belongs to the core, never to an entered
    /// [`LocalSet`](super::LocalSet) (tokio's builder spawns into the set):
    /// the form for a library's per-core service task, which dropping a
    /// user's set must not abort.
    ///
    /// ```
    /// use insane_runtime::task::{Builder, Latency};
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let rc = std::rc::Rc::new(3);
    /// let h = Builder::new().latency(Latency::Critical).spawn_local(async move { *rc }).unwrap();
    /// assert_eq!(h.await.unwrap(), 3);
    /// # });
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime (`Other`).
    pub fn spawn_local<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let shared = context::with_core(|c| c.shared.clone())
            .ok_or_else(|| outside("task::Builder::spawn_local"))?;
        // SAFETY: `shared` is this thread's core, which alone runs and
        // drops the task (as in `task::spawn_local`).
        Ok(unsafe { super::raw::spawn(shared, future, true, self.latency) })
    }

    /// Like [`spawn_on`](super::spawn_on).
    ///
    /// ```
    /// use insane_runtime::task::{Builder, Latency};
    /// # insane_runtime::runtime::Runtime::builder().cores(2).build().unwrap().block_on(async {
    /// let h = Builder::new().latency(Latency::Critical).spawn_on(1, async { 2 }).unwrap();
    /// assert_eq!(h.await.unwrap(), 2);
    /// assert!(Builder::new().spawn_on(7, async {}).is_err());
    /// # });
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime (`Other`), or `core` does not exist
    /// (`InvalidInput`).
    pub fn spawn_on<F>(self, core: usize, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (target, cores) =
            context::with_core(|c| (c.runtime.cores.get(core).cloned(), c.runtime.cores.len()))
                .ok_or_else(|| outside("task::Builder::spawn_on"))?;
        let shared = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("spawn_on: core {core} does not exist (this runtime has {cores} cores)"),
            )
        })?;
        Ok(super::spawn_send_with(shared, future, self.latency))
    }
}

fn outside(what: &str) -> io::Error {
    io::Error::other(format!(
        "{what} must be called from inside an insane runtime \
         (use #[insane::main], #[insane::test] or Runtime::block_on)"
    ))
}
