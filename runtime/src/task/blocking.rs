//! [`spawn_blocking`] on the runtime's bounded blocking thread pool, and
//! [`block_in_place`].
//!
//! The pool belongs to the runtime: at most
//! [`Builder::max_blocking_threads`](crate::runtime::Builder::max_blocking_threads)
//! threads (default 512, tokio's), started on demand and stopped after
//! [`Builder::thread_keep_alive`](crate::runtime::Builder::thread_keep_alive)
//! idle (default 10 s). Closures beyond that many wait in a FIFO queue.
//! Dropping the runtime cancels the closures that have not started and
//! waits for the running ones (tokio's behaviour);
//! `Runtime::shutdown_timeout` and `shutdown_background` wait less.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Id, JoinError, JoinHandle, TaskHeader, coop};
use crate::context;
use crate::core::Runnable;
use crate::runtime::Handle;

/// Default [`max_blocking_threads`](crate::runtime::Builder::max_blocking_threads).
pub(crate) const DEFAULT_MAX_THREADS: usize = 512;
/// Default [`thread_keep_alive`](crate::runtime::Builder::thread_keep_alive).
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

thread_local! {
    /// The pool a blocking thread belongs to, so that `spawn_blocking`
    /// works from inside a blocking closure too.
    static POOL: std::cell::RefCell<Option<Arc<Pool>>> = const { std::cell::RefCell::new(None) };
    /// The id of the blocking closure this thread runs, for `task::try_id`.
    static CURRENT: std::cell::Cell<Option<Id>> = const { std::cell::Cell::new(None) };
}

/// The id of the blocking closure running on this thread, if any.
pub(crate) fn current_id() -> Option<Id> {
    CURRENT.try_with(std::cell::Cell::get).ok().flatten()
}

/// Clears `CURRENT` when the closure returns or panics.
struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(None));
    }
}

/// A runtime's blocking thread pool.
pub(crate) struct Pool {
    state: Mutex<State>,
    /// Idle threads wait here for work.
    work: Condvar,
    /// `shutdown` waits here for the last thread to exit.
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Runnable>,
    /// Threads alive (running a closure or idle).
    threads: usize,
    /// Threads waiting on `work`.
    idle: usize,
    /// Notifications sent to idle threads and not yet consumed.
    notified: usize,
    shutdown: bool,
    next_thread: usize,
}

impl Pool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, thread_name: &str) -> Self {
        Self {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            exited: Condvar::new(),
            max_threads,
            keep_alive,
            thread_name: format!("{thread_name}-blocking"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Closures run outside the lock, so a poisoned lock only means a
        // panic in this file's bookkeeping; the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The schedule function of every blocking task: queue it and make
    /// sure a thread will run it.
    fn schedule(self: &Arc<Self>, runnable: Runnable) {
        let mut state = self.lock();
        if state.shutdown {
            drop(state);
            // Dropping the runnable cancels the task.
            drop(runnable);
            return;
        }
        state.queue.push_back(runnable);
        if state.idle > state.notified {
            state.notified += 1;
            drop(state);
            self.work.notify_one();
            return;
        }
        if state.threads >= self.max_threads {
            return; // a running thread takes it when it is done
        }
        state.threads += 1;
        let index = state.next_thread;
        state.next_thread += 1;
        drop(state);
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name(self.thread_name.clone())
            .spawn(move || pool.run_thread());
        if let Err(e) = spawned {
            tracing::warn!(error = %e, thread = index, "cannot start a blocking thread");
            let mut state = self.lock();
            state.threads -= 1;
            // With no thread at all the queue would never move: cancel it.
            let orphans = if state.threads == 0 {
                std::mem::take(&mut state.queue)
            } else {
                VecDeque::new()
            };
            drop(state);
            self.exited.notify_all();
            drop(orphans);
        }
    }

    fn run_thread(self: Arc<Self>) {
        let _ = POOL.try_with(|p| *p.borrow_mut() = Some(self.clone()));
        let mut state = self.lock();
        loop {
            if let Some(runnable) = state.queue.pop_front() {
                drop(state);
                if runnable.metadata().is_aborted() {
                    // Aborted before it started: cancelled, never run.
                    drop(runnable);
                } else {
                    runnable.run();
                }
                state = self.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (s, waited) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = s;
            state.idle -= 1;
            if state.notified > 0 {
                state.notified -= 1;
                continue;
            }
            if waited.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
        drop(state);
        self.exited.notify_all();
        let _ = POOL.try_with(|p| p.borrow_mut().take());
    }

    /// Cancels the closures that have not started and waits until every
    /// thread has finished the one it runs, or until `deadline` (`None`:
    /// no limit). Threads still running a closure then finish it on their
    /// own and exit: they see `shutdown` and take no more work.
    pub(crate) fn shutdown_until(&self, deadline: Option<Instant>) {
        let mut state = self.lock();
        state.shutdown = true;
        let queued = std::mem::take(&mut state.queue);
        self.work.notify_all();
        while state.threads > 0 {
            state = match deadline {
                None => self
                    .exited
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.exited
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        drop(state);
        // Dropping the runnables cancels those tasks (outside the lock: a
        // task's drop may reach the pool).
        drop(queued);
    }

    /// Threads alive now (for tests and debugging).
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }
}

/// The future a blocking task runs: the closure, called once, with its
/// runtime's handle entered.
struct BlockingTask<'h, F> {
    header: &'h TaskHeader,
    f: Option<F>,
    handle: Option<Handle>,
}

impl<F> Unpin for BlockingTask<'_, F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<'_, F> {
    type Output = Result<R, JoinError>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let header = self.header;
        let Some(f) = self.f.take() else {
            // Polled again after completion cannot happen (async-task never
            // does); answer as cancelled rather than panic.
            return Poll::Ready(Err(JoinError::cancelled(header.id())));
        };
        if header.is_aborted() {
            header.set_finished();
            return Poll::Ready(Err(JoinError::cancelled(header.id())));
        }
        let _ = CURRENT.try_with(|c| c.set(Some(header.id())));
        let guard = CurrentGuard;
        let entered = self.handle.take().map(context::enter_handle);
        let out = coop::with_unconstrained(|| catch_unwind(AssertUnwindSafe(f)));
        drop(entered);
        drop(guard);
        header.set_finished();
        Poll::Ready(out.map_err(|payload| JoinError::panic(header.id(), payload)))
    }
}

impl<F> Drop for BlockingTask<'_, F> {
    fn drop(&mut self) {
        self.header.set_finished();
    }
}

/// Runs the blocking closure `f` on the runtime's blocking thread pool and
/// returns a [`JoinHandle`] for its result, which any core (or any other
/// future) may await. Like `tokio::task::spawn_blocking`: for synchronous
/// work that would otherwise hold a core (file I/O, compression, a
/// blocking library call).
///
/// The pool has at most `max_blocking_threads` threads (512 by default);
/// beyond that, closures wait in a queue. A closure cannot be interrupted:
/// [`JoinHandle::abort`] cancels it only if it has not started. A panic in
/// `f` is reported as [`JoinError::is_panic`].
///
/// It may be called from a core, from inside another blocking closure, or
/// on a thread that entered a runtime
/// ([`Runtime::enter`](crate::runtime::Runtime::enter)). The closure runs
/// with its runtime's [`Handle`] entered, as in tokio:
/// [`task::spawn`](crate::task::spawn) (on a worker core, round-robin),
/// `spawn_blocking` and `Handle::current()` work inside it. Unlike tokio, a
/// blocking thread is not a core: timers, sockets and `spawn_local` panic
/// there; use [`Handle::block_on`] or
/// [`CoreHandle::spawn`](crate::runtime::CoreHandle::spawn) to run such
/// work on a core.
///
/// ```
/// use insane_runtime::task;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let sum = task::spawn_blocking(|| (1..=100u64).sum::<u64>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// # });
/// ```
///
/// # Panics
/// Outside an insane runtime (not a core, not a blocking thread, no
/// entered handle).
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let handle = context::current_handle().ok();
    let pool = handle
        .as_ref()
        .map(|h| h.blocking_pool().clone())
        .or_else(|| POOL.try_with(|p| p.borrow().clone()).ok().flatten());
    let Some(pool) = pool else {
        panic!(
            "insane::task::spawn_blocking must be called from inside an insane runtime \
             (use #[insane::main], #[insane::test], Runtime::block_on, \
             or Runtime::enter / Handle::enter on this thread)"
        );
    };
    spawn_on_pool(pool, handle, f)
}

/// `spawn_blocking` on `handle`'s runtime, from any thread
/// (`Handle::spawn_blocking`).
pub(crate) fn spawn_blocking_in<F, R>(handle: Handle, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_on_pool(handle.blocking_pool().clone(), Some(handle), f)
}

/// Queues `f` on `pool`; it runs with `handle` entered.
fn spawn_on_pool<F, R>(pool: Arc<Pool>, handle: Option<Handle>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let header = TaskHeader::new(Id::next(), false, super::Latency::Normal, None);
    let schedule = move |runnable| pool.schedule(runnable);
    // SAFETY: the future borrows the header, which async-task keeps in the
    // same allocation until after the future is dropped. `F` and `R` are
    // Send + 'static, `Handle` is Send + Sync + 'static, and `&TaskHeader`
    // is Send (the header is Sync), so the
    // future may be polled and dropped on any thread; the schedule function
    // is Send + Sync + 'static.
    let (runnable, task) = unsafe {
        async_task::Builder::new().metadata(header).spawn_unchecked(
            move |header| BlockingTask {
                header,
                f: Some(f),
                handle,
            },
            schedule,
        )
    };
    let handle = JoinHandle::new(task, runnable.waker());
    runnable.schedule();
    handle
}

/// Runs the blocking closure `f` right here, on the current core's thread,
/// and returns its result. The signature is `tokio::task::block_in_place`'s
/// but the semantics differ, because insane is thread-per-core:
///
/// - **insane**: the core stops while `f` runs. Every other task of this
///   core, its timers and its sockets wait until `f` returns; tasks on
///   other cores run on. It never panics, on any runtime configuration.
/// - **tokio** (multi-thread runtime): the worker hands its other tasks to
///   another thread first, so they keep running; on a current-thread
///   runtime tokio panics.
///
/// Prefer [`spawn_blocking`] for anything long. `block_in_place` is for
/// short blocking calls where moving the data to another thread costs more
/// than the pause. The task's cooperative budget is lifted for the rest of
/// its current poll, `f` included (as tokio does).
///
/// ```
/// use insane_runtime::task;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let n = task::block_in_place(|| {
///     std::thread::sleep(std::time::Duration::from_millis(1));
///     42
/// });
/// assert_eq!(n, 42);
/// # });
/// ```
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    // Lifted first, so that futures `f` drives itself (a nested executor)
    // are not held back by a budget this poll already spent.
    coop::stop();
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_stop_after_the_keep_alive() {
        let rt = crate::runtime::Runtime::builder()
            .cores(1)
            .thread_keep_alive(Duration::from_millis(20))
            .build()
            .unwrap();
        rt.block_on(async {
            spawn_blocking(|| ()).await.unwrap();
        });
        let pool = rt.blocking_pool();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.threads() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.threads(), 0, "the idle thread exited");
        // A new closure starts a new thread.
        assert_eq!(
            rt.block_on(async { spawn_blocking(|| 5).await }).unwrap(),
            5
        );
    }
}
