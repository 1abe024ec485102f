//! [`JoinSet`]: a collection of tasks awaited in completion order.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{AbortHandle, Id, JoinError, JoinHandle, coop};

/// A set of tasks spawned on this runtime, awaited in the order they
/// finish. Like `tokio::task::JoinSet`: dropping the set aborts every task
/// still in it; `spawn` returns an [`AbortHandle`]; `join_next_with_id`
/// gives the [`Id`] that handle (and a [`JoinError`]) reports.
///
/// ```
/// use insane_runtime::task::JoinSet;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut set = JoinSet::new();
/// for i in 0..10u32 {
///     set.spawn(async move { i * 2 });
/// }
/// let mut sum = 0;
/// while let Some(res) = set.join_next().await {
///     sum += res.unwrap();
/// }
/// assert_eq!(sum, 90);
/// # });
/// ```
///
/// Collecting futures spawns them, like tokio's `FromIterator` and `Extend`:
///
/// ```
/// use insane_runtime::task::JoinSet;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut set: JoinSet<u32> = (0..5u32).map(|i| async move { i }).collect();
/// set.extend((5..10u32).map(|i| async move { i }));
/// let mut outputs = set.join_all().await;
/// outputs.sort();
/// assert_eq!(outputs, (0..10).collect::<Vec<_>>());
/// # });
/// ```
pub struct JoinSet<T> {
    tasks: FuturesUnordered<WithId<T>>,
}

/// A `JoinHandle` whose output carries the task's id.
struct WithId<T>(JoinHandle<T>);

impl<T> Future for WithId<T> {
    type Output = (Id, Result<T, JoinError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.0.id();
        Pin::new(&mut self.0).poll(cx).map(|out| (id, out))
    }
}

fn with_id<T>((id, out): (Id, Result<T, JoinError>)) -> Result<(Id, T), JoinError> {
    out.map(|v| (id, v))
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// ```
    /// let set = insane_runtime::task::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            tasks: FuturesUnordered::new(),
        }
    }

    /// How many tasks are in the set (finished ones count until joined).
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(async {});
    /// assert_eq!(set.len(), 1);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    ///
    /// ```
    /// assert!(insane_runtime::task::JoinSet::<u8>::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds an already spawned task to the set (insane only: tokio's
    /// `JoinSet` cannot adopt a `JoinHandle`). Returns its [`AbortHandle`].
    ///
    /// ```
    /// use insane_runtime::task::{self, JoinSet};
    /// # insane_runtime::runtime::Runtime::builder().cores(2).build().unwrap().block_on(async {
    /// let mut set = JoinSet::new();
    /// set.push(task::spawn_on(1, async { 1 }));
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
    /// # });
    /// ```
    pub fn push(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        self.tasks.push(WithId(handle));
        abort
    }

    /// Waits for the next task to finish and returns its output; `None`
    /// when the set is empty. Cancel safe: if this future is dropped
    /// before it completes, no task leaves the set.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(async { 7 });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 7);
    /// assert!(set.join_next().await.is_none());
    /// # });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Like [`join_next`](Self::join_next), with the finished task's
    /// [`Id`] (the one [`AbortHandle::id`] and `JoinHandle::id` gave). A
    /// failed task's id is in its [`JoinError::id`].
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// let id = set.spawn(async { "out" }).id();
    /// let (joined, out) = set.join_next_with_id().await.unwrap().unwrap();
    /// assert_eq!((joined, out), (id, "out"));
    /// # });
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Polls for the next finished task (for hand-written futures):
    /// `Ready(None)` when the set is empty.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(async { 3 });
    /// let out = poll_fn(|cx| set.poll_join_next(cx)).await;
    /// assert_eq!(out.unwrap().unwrap(), 3);
    /// # });
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.tasks
            .poll_next_unpin(cx)
            .map(|next| next.map(|(_, out)| out))
    }

    /// Like [`poll_join_next`](Self::poll_join_next), with the task's id.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// let id = set.spawn(async { 3 }).id();
    /// let out = poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
    /// assert_eq!(out.unwrap().unwrap(), (id, 3));
    /// # });
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        self.tasks.poll_next_unpin(cx).map(|next| next.map(with_id))
    }

    /// Returns a finished task's output without waiting, or `None` if no
    /// task has finished (or the set is empty). Not limited by the
    /// cooperative budget, since it never waits.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(async { 5 });
    /// assert!(set.try_join_next().is_none()); // not run yet
    /// insane_runtime::task::yield_now().await;
    /// assert_eq!(set.try_join_next().unwrap().unwrap(), 5);
    /// # });
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id_inner().map(|(_, out)| out)
    }

    /// Like [`try_join_next`](Self::try_join_next), with the task's id.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// let id = set.spawn(async { 5 }).id();
    /// insane_runtime::task::yield_now().await;
    /// assert_eq!(set.try_join_next_with_id().unwrap().unwrap(), (id, 5));
    /// # });
    /// ```
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        self.try_join_next_with_id_inner().map(with_id)
    }

    fn try_join_next_with_id_inner(&mut self) -> Option<(Id, Result<T, JoinError>)> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Never waits, so the budget must not make it miss a finished task.
        match coop::with_unconstrained(|| self.tasks.poll_next_unpin(&mut cx)) {
            Poll::Ready(next) => next,
            Poll::Pending => None,
        }
    }

    /// Waits for every task and returns their outputs in completion order.
    ///
    /// # Panics
    /// Re-raises the panic of a task that panicked, and panics if a task
    /// was cancelled (like tokio).
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let set: insane_runtime::task::JoinSet<u8> = (1..=2u8).map(|i| async move { i }).collect();
    /// assert_eq!(set.join_all().await.len(), 2);
    /// # });
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(res) = self.join_next().await {
            match res {
                Ok(v) => out.push(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    /// Aborts every task in the set; they stay in it until joined (each
    /// then gives a cancelled [`JoinError`], unless it had finished).
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_all(&mut self) {
        for handle in self.tasks.iter() {
            handle.0.abort();
        }
    }

    /// Aborts every task and waits until all have stopped; the set is
    /// empty afterwards. Outputs and panics of tasks that finished first
    /// are discarded.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Removes every task from the set without aborting them: they run on,
    /// detached.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn(async {});
    /// set.detach_all();
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub fn detach_all(&mut self) {
        self.tasks.clear();
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current core, adds it to the set and returns
    /// a handle that can abort it. Like `tokio::task::JoinSet::spawn`.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// let abort = set.spawn(std::future::pending::<()>());
    /// abort.abort();
    /// let err = set.join_next().await.unwrap().unwrap_err();
    /// assert_eq!(err.id(), abort.id());
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside an insane runtime.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.push(super::spawn(future))
    }

    /// Spawns `future` on core `core` and adds it to the set. tokio's
    /// `spawn_on` takes a runtime `Handle` instead (insane has one runtime
    /// per process and names cores by index; see [`spawn_on`](super::spawn_on)).
    ///
    /// ```
    /// use insane_runtime::runtime::Runtime;
    /// # Runtime::builder().cores(2).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn_on(1, async { Runtime::current_core() });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), Some(1));
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside an insane runtime, or when `core` does not exist.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, core: usize, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.push(super::spawn_on(core, future))
    }

    /// Runs `f` on the runtime's blocking thread pool (see
    /// [`spawn_blocking`](super::spawn_blocking)) and adds it to the set.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn_blocking(|| std::thread::current().name().map(str::to_owned));
    /// let name = set.join_next().await.unwrap().unwrap();
    /// assert!(name.unwrap().ends_with("-blocking"));
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside an insane runtime.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.push(super::spawn_blocking(f))
    }

    /// Runs `f` on the blocking thread pool of the runtime `handle` belongs
    /// to and adds it to the set (tokio's `spawn_blocking_on`).
    ///
    /// ```
    /// use insane_runtime::runtime::Handle;
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// set.spawn_blocking_on(|| 6 * 7, &Handle::current());
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 42);
    /// # });
    /// ```
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &crate::runtime::Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.push(handle.spawn_blocking(f))
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns a `!Send` future on the current core and adds it to the set.
    ///
    /// ```
    /// use std::rc::Rc;
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut set = insane_runtime::task::JoinSet::new();
    /// let local = Rc::new(4);
    /// set.spawn_local(async move { *local });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 4);
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside an insane runtime.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.push(super::spawn_local(future))
    }

    /// Spawns a `!Send` future on `local_set` (the current core) and adds
    /// it to the set (tokio's `spawn_local_on`).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use insane_runtime::task::{JoinSet, LocalSet};
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let local = LocalSet::new();
    /// let mut set = JoinSet::new();
    /// let shared = Rc::new(5);
    /// set.spawn_local_on(async move { *shared }, &local);
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 5);
    /// # });
    /// ```
    ///
    /// # Panics
    /// Outside an insane runtime.
    #[track_caller]
    pub fn spawn_local_on<F>(&mut self, future: F, local_set: &super::LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.push(local_set.spawn_local(future))
    }
}

/// Spawns every future of the iterator into a new set, on the current
/// core (like calling [`JoinSet::spawn`] on each).
///
/// ```
/// use insane_runtime::task::JoinSet;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let set: JoinSet<_> = (0..3).map(|i| async move { i * 10 }).collect();
/// assert_eq!(set.len(), 3);
/// # });
/// ```
///
/// # Panics
/// Outside an insane runtime (when the iterator is not empty).
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

/// Spawns every future of the iterator into the set, on the current core
/// (like calling [`JoinSet::spawn`] on each).
///
/// ```
/// use insane_runtime::task::JoinSet;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut set = JoinSet::new();
/// set.extend([1, 2].map(|i| async move { i }));
/// assert_eq!(set.len(), 2);
/// # });
/// ```
///
/// # Panics
/// Outside an insane runtime (when the iterator is not empty).
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for future in iter {
            self.spawn(future);
        }
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
