//! [`JoinSet`]: a collection of tasks awaited in completion order.

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{JoinError, JoinHandle};

/// A set of tasks spawned on this runtime, awaited in the order they
/// finish. Like `tokio::task::JoinSet`: dropping the set aborts every task
/// still in it.
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
pub struct JoinSet<T> {
    tasks: FuturesUnordered<JoinHandle<T>>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            tasks: FuturesUnordered::new(),
        }
    }

    /// How many tasks are in the set (finished ones count until joined).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Adds an already spawned task to the set.
    pub fn push(&mut self, handle: JoinHandle<T>) {
        self.tasks.push(handle);
    }

    /// Waits for the next task to finish; `None` when the set is empty.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.tasks.next().await
    }

    /// Polls for the next finished task (for hand-written futures).
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.tasks.poll_next_unpin(cx)
    }

    /// Returns a finished task's result without waiting, if there is one.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let waker = futures_util::task::noop_waker();
        match self.tasks.poll_next_unpin(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => r,
            Poll::Pending => None,
        }
    }

    /// Waits for every task and returns their outputs in completion order.
    ///
    /// # Panics
    /// Re-raises the panic of a task that panicked (like tokio).
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

    /// Aborts every task in the set; they stay in it until joined.
    pub fn abort_all(&mut self) {
        for handle in self.tasks.iter() {
            handle.abort();
        }
    }

    /// Aborts every task and waits until all have stopped.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Removes every task from the set without aborting them.
    pub fn detach_all(&mut self) {
        self.tasks.clear();
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current core and adds it to the set.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.push(super::spawn(future));
    }

    /// Spawns `future` on core `core` and adds it to the set.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, core: usize, future: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.push(super::spawn_on(core, future));
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns a `!Send` future on the current core and adds it to the set.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F)
    where
        F: Future<Output = T> + 'static,
    {
        self.push(super::spawn_local(future));
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
