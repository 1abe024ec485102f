//! How a future becomes a task: the per-task header kept beside it in the
//! `async-task` allocation, and the wrapper future that turns panics and
//! aborts into [`JoinError`]s.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::{Id, JoinError, JoinHandle, Latency};
use crate::context;
use crate::core::{CoreShared, Runnable};
use crate::metrics::Counted;

/// Stored in the task's allocation (async-task metadata): what the
/// `JoinHandle` and `AbortHandle`s need to abort the task from any thread.
///
/// Aborting sets `aborted` and wakes the task through a waker the handle
/// holds (a waker counts as a reference to the allocation, so the header
/// lives as long as any handle does); the task's next poll sees the flag.
pub(crate) struct TaskHeader {
    id: Id,
    local: bool,
    aborted: AtomicBool,
    /// Set once the task's future is gone: it completed, panicked, was
    /// cancelled, or was dropped without running.
    finished: AtomicBool,
    /// The core that owns the task, runs it (its wake-ups go there) and
    /// counts it as alive until it finishes (`None`: a blocking closure,
    /// which no core runs or counts).
    core: Option<Arc<CoreShared>>,
    /// The task's [`Latency`] (`Latency::to_u8`): which run queue its
    /// wake-ups go to.
    latency: AtomicU8,
    /// The owning core's critical pass in which the task last ran (see
    /// `Core::run_tasks`); touched only by that core.
    pass: AtomicU64,
}

impl TaskHeader {
    /// The header of a new task; a core task is counted as alive by its
    /// core from here on (see [`Counted`] for `by`).
    pub(crate) fn new(
        id: Id,
        local: bool,
        latency: Latency,
        core: Option<(Arc<CoreShared>, Counted)>,
    ) -> Self {
        let core = core.map(|(core, by)| {
            core.metrics.task_spawned(by);
            core
        });
        Self {
            id,
            local,
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            core,
            latency: AtomicU8::new(latency.to_u8()),
            pass: AtomicU64::new(0),
        }
    }

    pub(crate) fn latency(&self) -> Latency {
        Latency::from_u8(self.latency.load(Ordering::Relaxed))
    }

    fn set_latency(&self, latency: Latency) {
        self.latency.store(latency.to_u8(), Ordering::Relaxed);
    }

    /// The critical pass in which the task last ran.
    pub(crate) fn pass(&self) -> u64 {
        self.pass.load(Ordering::Relaxed)
    }

    pub(crate) fn set_pass(&self, pass: u64) {
        self.pass.store(pass, Ordering::Relaxed);
    }

    pub(crate) fn id(&self) -> Id {
        self.id
    }

    /// The core that owns the task (`None`: a blocking closure).
    pub(crate) fn core(&self) -> Option<&Arc<CoreShared>> {
        self.core.as_ref()
    }

    /// Whether the task is `!Send` and must stay on its thread.
    pub(crate) fn is_local(&self) -> bool {
        self.local
    }

    /// Marks the task aborted; the caller then wakes it so that its next
    /// poll (on its own core) drops the future.
    pub(crate) fn set_aborted(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Records that the future is gone (any number of times). A core
    /// task's wrapper also tells its core's metrics, once.
    pub(crate) fn set_finished(&self) {
        self.finished.store(true, Ordering::Release);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

/// Creates the task for `future`, owned by the core `shared`, and queues it.
///
/// Its class is `latency`, or else the spawning task's (normal outside a
/// task).
///
/// # Safety
/// If `local` is false, `F` and `F::Output` must be `Send`. If `local` is
/// true, the caller must be on the thread of the core `shared` belongs to.
pub(crate) unsafe fn spawn<F>(
    shared: Arc<CoreShared>,
    future: F,
    local: bool,
    latency: Option<Latency>,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let id = Id::next();
    let latency = latency.unwrap_or_else(super::latency);
    let by = counted_by(&shared);
    let header = TaskHeader::new(id, local, latency, Some((shared, by)));
    // The core is found through the header: no second reference to it.
    let schedule = |runnable: Runnable| CoreShared::schedule_task(runnable);
    // SAFETY: `TaskFuture` borrows the header, which async-task keeps alive
    // (in the same allocation) until after the future is dropped. The
    // future is polled and dropped only by the owning core's thread (see the
    // caller's contract), or anywhere when it is Send. The schedule
    // function is Send + Sync + 'static.
    let (runnable, task) = unsafe {
        async_task::Builder::new()
            .metadata(header)
            .spawn_unchecked(move |header| TaskFuture::new(header, future), schedule)
    };
    let handle = JoinHandle::new(task, runnable.waker());
    runnable.schedule();
    handle
}

/// Which thread counts an event of a task of core `shared`: the calling
/// one (see [`Counted`]).
fn counted_by(shared: &CoreShared) -> Counted {
    match context::with_core(|core| core.shared.uid == shared.uid) {
        Some(true) => Counted::OnOwner,
        _ => Counted::Elsewhere,
    }
}

/// The future async-task runs: the user's future plus cancellation, panic
/// catching and registration with the core for shutdown.
struct TaskFuture<'h, F> {
    header: &'h TaskHeader,
    /// Key of this task's waker in its core's task registry, once polled.
    registered: Option<(u64, usize)>,
    /// `None` once the user future completed or was dropped.
    future: Option<F>,
    /// Whether the core's metrics were told that the task finished.
    counted_finished: bool,
}

impl<'h, F: Future> TaskFuture<'h, F> {
    fn new(header: &'h TaskHeader, future: F) -> Self {
        Self {
            header,
            registered: None,
            future: Some(future),
            counted_finished: false,
        }
    }

    /// Drops the user future (its destructors run here, on the owning core)
    /// and forgets the task's registrations.
    fn finish(self: Pin<&mut Self>) {
        // SAFETY: we never move the user future out of `future`; setting the
        // Option to None drops it in place, which `Pin` permits.
        let this = unsafe { self.get_unchecked_mut() };
        this.future = None;
        this.deregister();
    }
}

impl<F> TaskFuture<'_, F> {
    /// Makes the task reachable for shutdown (the core's task registry).
    fn register(&mut self, cx: &Context<'_>) {
        self.registered = context::with_core(|core| {
            let key = core.tasks.try_borrow_mut().ok()?.insert(cx.waker().clone());
            Some((core.shared.uid, key))
        })
        .flatten();
    }

    fn deregister(&mut self) {
        self.header.set_finished();
        if !self.counted_finished {
            self.counted_finished = true;
            if let Some(core) = &self.header.core {
                core.metrics.task_finished(counted_by(core));
            }
        }
        if let Some((core_uid, key)) = self.registered.take() {
            context::with_core(|core| {
                if core.shared.uid == core_uid {
                    if let Ok(mut tasks) = core.tasks.try_borrow_mut() {
                        tasks.try_remove(key);
                    }
                }
            });
        }
    }
}

impl<F: Future> Future for TaskFuture<'_, F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let header = self.header;
        let closing = context::with_core(|core| core.closing.get()).unwrap_or(true);
        if closing || header.is_aborted() {
            self.finish();
            return Poll::Ready(Err(JoinError::cancelled(header.id)));
        }
        // SAFETY: the user future is structurally pinned: it is never moved
        // out of the Option, only dropped in place by `finish`.
        let future = unsafe {
            self.as_mut()
                .map_unchecked_mut(|t| t.future.as_mut().expect("task polled after completion"))
        };
        let polled = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        // `task::set_latency` during the poll: keep the class for the
        // task's next wake-ups.
        context::with_core(|core| {
            if core.latency_changed.replace(false) {
                header.set_latency(core.current_latency.get());
            }
        });
        match polled {
            Ok(Poll::Pending) => {
                if self.registered.is_none() {
                    // Registered only once the task waits: most tasks finish
                    // in their first poll and never pay for it.
                    // SAFETY: only the `registered` field is written.
                    let this = unsafe { self.as_mut().get_unchecked_mut() };
                    this.register(cx);
                }
                Poll::Pending
            }
            Ok(Poll::Ready(out)) => {
                self.finish();
                Poll::Ready(Ok(out))
            }
            Err(payload) => {
                // A destructor that panics too must not take the core down.
                let _ = catch_unwind(AssertUnwindSafe(|| self.finish()));
                Poll::Ready(Err(JoinError::panic(header.id, payload)))
            }
        }
    }
}

impl<F> Drop for TaskFuture<'_, F> {
    fn drop(&mut self) {
        self.deregister();
    }
}
