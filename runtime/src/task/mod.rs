//! Tasks: spawning on the current core, on another core, or `!Send` ones
//! pinned to this thread, and the [`JoinHandle`] that awaits their output.
//!
//! Semantics follow tokio: a dropped `JoinHandle` detaches the task,
//! [`JoinHandle::abort`] (or an [`AbortHandle`]) cancels it (its future is
//! dropped on its own core, so destructors run), and a panicking task is
//! reported as [`JoinError::is_panic`] without taking its core down.
//!
//! What else is here, with tokio's names:
//! - [`JoinSet`]: tasks awaited in completion order, with their [`Id`]s.
//! - [`id`] / [`try_id`]: the current task's [`Id`].
//! - [`coop`]: the cooperative budget (128 units per poll),
//!   [`consume_budget`], [`unconstrained`].
//! - [`spawn_blocking`] on a bounded blocking thread pool, and
//!   [`block_in_place`] (which here pauses the current core: see its doc).
//! - [`LocalKey`], declared with [`task_local!`](crate::task_local).
//! - [`LocalSet`], for tokio code that groups `!Send` tasks (insane needs
//!   none to run them).
//! - [`Latency`] classes ([`Builder::latency`], [`set_latency`]):
//!   critical tasks run before normal ones on their core (the rules are
//!   on [`Latency`]).
//!
//! Where thread-per-core makes insane differ from tokio, the item's doc
//! says so; `docs/differences-from-tokio.md` lists every difference.

mod abort;
mod blocking;
pub mod coop;
mod error;
mod join_set;
mod latency;
mod local_set;
mod raw;
mod task_local;
mod yield_now;

pub use abort::AbortHandle;
pub use blocking::{block_in_place, spawn_blocking};
pub use coop::{Unconstrained, consume_budget, unconstrained};
pub use error::JoinError;
pub use join_set::JoinSet;
pub use latency::{Builder, Latency, latency, set_latency};
pub use local_set::{BlockOn, LocalEnterGuard, LocalSet};
pub use task_local::{AccessError, LocalKey};
pub use yield_now::yield_now;

/// Futures returned by this module's functions (tokio's
/// `task::futures` module): [`TaskLocalFuture`](futures::TaskLocalFuture).
///
/// ```
/// insane_runtime::task_local! {
///     static KEY: u8;
/// }
/// let fut: insane_runtime::task::futures::TaskLocalFuture<u8, _> = KEY.scope(1, async {});
/// # drop(fut);
/// ```
pub mod futures {
    pub use super::task_local::TaskLocalFuture;
}

pub(crate) use blocking::{
    DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS, Pool as BlockingPool, spawn_blocking_in,
};
pub(crate) use raw::TaskHeader;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::context;

/// A task's identifier, unique within the process (like
/// `tokio::task::Id`): [`JoinHandle::id`], [`AbortHandle::id`],
/// [`JoinError::id`], [`JoinSet::join_next_with_id`] and, inside the task,
/// [`id()`] all give the same value. Blocking closures have ids too.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// use insane_runtime::task::{self, Id};
/// let a = task::spawn(async {});
/// let b = task::spawn(async {});
/// let (ia, ib): (Id, Id) = (a.id(), b.id());
/// assert_ne!(ia, ib);
/// println!("task {ia} and task {ib}");
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of the task being polled. Like `tokio::task::id`.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// use insane_runtime::task;
/// let handle = task::spawn(async { task::id() });
/// assert_eq!(handle.id(), handle.await.unwrap());
/// # });
/// ```
///
/// # Panics
/// When called outside a task (use [`try_id`] there): outside a runtime
/// and in the future given to `block_on` (which is not a task, as in
/// tokio). Inside a [`spawn_blocking`] closure it is that closure's id.
#[track_caller]
pub fn id() -> Id {
    try_id().expect("task::id() called outside of a task")
}

/// The id of the task being polled, or `None` outside a task. Like
/// `tokio::task::try_id`.
///
/// ```
/// assert_eq!(insane_runtime::task::try_id(), None);
/// ```
pub fn try_id() -> Option<Id> {
    context::with_core(|c| c.current_task.get())
        .flatten()
        .or_else(blocking::current_id)
}

/// Spawns a `Send` future on the current core and returns a handle to its
/// output. Like `tokio::spawn`; the task never moves to another core.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let handle = insane_runtime::task::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
///
/// On a thread that is not a core but has entered a runtime
/// ([`Runtime::enter`](crate::runtime::Runtime::enter),
/// [`Handle::enter`](crate::runtime::Handle::enter), or inside a
/// [`spawn_blocking`] closure), it spawns through that
/// [`Handle`](crate::runtime::Handle): on a worker core chosen round-robin.
///
/// ```
/// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build().unwrap();
/// let _guard = rt.enter(); // this thread is not a core
/// let task = insane_runtime::task::spawn(async { 6 * 7 });
/// assert_eq!(rt.handle().block_on(task).unwrap(), 42);
/// ```
///
/// # Panics
/// Outside an insane runtime (not a core, no entered handle).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if let Some(shared) = context::with_core(|c| c.shared.clone()) {
        return spawn_send(shared, future);
    }
    match context::entered_handle() {
        Some(handle) => handle.spawn(future),
        None => panic!(
            "insane::spawn must be called from inside an insane runtime \
             (use #[insane::main], #[insane::test], Runtime::block_on, \
             or Runtime::enter / Handle::enter on this thread)"
        ),
    }
}

/// Spawns a `!Send` future on the current core; it is polled and dropped
/// only on this thread. Like `tokio::task::spawn_local`, without the need
/// for a `LocalSet`: every insane core can run local tasks. While a
/// [`LocalSet`] is entered (inside its `run_until`, its tasks, or under
/// its `enter` guard) the task joins that set, as in tokio.
///
/// ```
/// use std::rc::Rc;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let shared = Rc::new(5);
/// let copy = shared.clone();
/// let n = insane_runtime::task::spawn_local(async move { *copy + 1 }).await.unwrap();
/// assert_eq!(n, 6);
/// # });
/// ```
///
/// # Panics
/// Outside an insane runtime.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match local_set::spawn_into_entered(future) {
        Ok(handle) => handle,
        Err(future) => spawn_local_plain(future),
    }
}

/// [`spawn_local`] without regard to an entered [`LocalSet`]: a plain task
/// of the current core.
#[track_caller]
pub(crate) fn spawn_local_plain<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let shared = context::expect_core("insane::task::spawn_local", |c| c.shared.clone());
    spawn_local_on_core(shared, future)
}

/// Spawns a `!Send` future owned by the core `shared`, whose thread must be
/// the caller's: both callers know it (`spawn_local` found the core in
/// this thread's context; `Runtime` is `!Send` and `!Sync`, so it is used
/// only on the thread that built it, core 0's).
pub(crate) fn spawn_local_on_core<F>(
    shared: std::sync::Arc<crate::core::CoreShared>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    debug_assert!(
        shared.is_owned_by_current_thread(),
        "a !Send task can only be spawned on its core's own thread"
    );
    // SAFETY: the runnable is only ever run by the core that owns `shared`,
    // which is this thread (see above; its schedule function routes
    // every wake-up there), and it is only dropped there: on shutdown by
    // that core, or leaked by `CoreShared::drop` when it would be dropped
    // elsewhere.
    unsafe { raw::spawn(shared, future, true, None) }
}

/// Spawns a `Send` future on core `core` of the current runtime (0-based,
/// `< Runtime::cores()`); the future is moved there through a lock-free
/// queue and the core is woken if it sleeps.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(2).build().unwrap().block_on(async {
/// use insane_runtime::runtime::Runtime;
/// let there = insane_runtime::task::spawn_on(1, async { Runtime::current_core() });
/// assert_eq!(there.await.unwrap(), Some(1));
/// # });
/// ```
///
/// # Panics
/// Outside an insane runtime, or when `core` does not exist.
#[track_caller]
pub fn spawn_on<F>(core: usize, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let target = context::expect_core("insane::task::spawn_on", |c| {
        c.runtime.cores.get(core).cloned()
    });
    let Some(shared) = target else {
        let cores = context::with_core(|c| c.runtime.cores.len()).unwrap_or(0);
        panic!("spawn_on: core {core} does not exist (this runtime has {cores} cores)");
    };
    spawn_send(shared, future)
}

/// An owned permission to await a task's output, or to cancel it.
///
/// Awaiting gives `Ok(output)`, or `Err(JoinError)` if the task panicked
/// or was aborted. Dropping the handle detaches the task; it keeps running.
/// Like `tokio::task::JoinHandle`; polling it counts against the awaiting
/// task's [cooperative budget](coop) once the output is ready.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// use insane_runtime::task;
/// let handle = task::spawn(async { "done" });
/// let id = handle.id();
/// assert_eq!(handle.await.unwrap(), "done");
/// # let _ = id;
/// # });
/// ```
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<Result<T, JoinError>, TaskHeader>>,
    abort: AbortHandle,
}

impl<T> JoinHandle<T> {
    /// `waker` is a waker of `task` (async-task's `Runnable::waker`): it keeps
    /// the allocation, and so the header, alive for the handle's life.
    pub(crate) fn new(
        task: async_task::Task<Result<T, JoinError>, TaskHeader>,
        waker: std::task::Waker,
    ) -> Self {
        let abort = AbortHandle::new(task.metadata(), waker);
        Self {
            task: Some(task.fallible()),
            abort,
        }
    }

    /// Cancels the task: it will not be polled again and its future is
    /// dropped on its core. Awaiting the handle then gives
    /// `Err(JoinError::is_cancelled())` unless the task had already finished.
    ///
    /// A [`spawn_blocking`] task can be cancelled only before it starts.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let handle = insane_runtime::task::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// Whether the task has finished (completed, panicked or was cancelled).
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let handle = insane_runtime::task::spawn(async {});
    /// insane_runtime::task::yield_now().await;
    /// assert!(handle.is_finished());
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The task's id.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// use insane_runtime::task;
    /// let handle = task::spawn(async { task::id() });
    /// let id = handle.id();
    /// assert_eq!(handle.await.unwrap(), id);
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        self.abort.id()
    }

    /// A handle that can abort the task but not await it; it may outlive
    /// this `JoinHandle` and be cloned and sent to other threads.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// use insane_runtime::task;
    /// let handle = task::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// abort.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// assert!(abort.is_finished());
    /// # });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let id = self.id();
        let task = self
            .task
            .as_mut()
            .expect("JoinHandle polled after it returned its output");
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                coop.made_progress();
                self.task = None;
                // `None`: the runtime dropped the task before it could run
                // (it was shutting down).
                Poll::Ready(out.unwrap_or_else(|| Err(JoinError::cancelled(id))))
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .finish()
    }
}

/// Spawns a `Send` future on the core `shared`, from any thread: what
/// `spawn`, `spawn_on`, `Runtime::spawn` and `CoreHandle::spawn` share.
pub(crate) fn spawn_send<F>(
    shared: std::sync::Arc<crate::core::CoreShared>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_send_with(shared, future, None)
}

/// [`spawn_send`] with a latency class (`None`: the spawning task's).
pub(crate) fn spawn_send_with<F>(
    shared: std::sync::Arc<crate::core::CoreShared>,
    future: F,
    latency: Option<Latency>,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // SAFETY: `F` and its output are Send, as `raw::spawn` requires for
    // non-local tasks.
    unsafe { raw::spawn(shared, future, false, latency) }
}
