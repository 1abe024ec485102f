//! [`LocalSet`]: tokio's set of `!Send` tasks, for code that ports from
//! tokio. Every insane core runs `!Send` tasks without one
//! ([`spawn_local`](super::spawn_local)); a `LocalSet` adds what tokio code
//! expects of the set itself: its tasks are aborted when it is dropped,
//! awaiting it waits for all of them, and while it is *entered* (inside
//! [`LocalSet::run_until`], its own tasks, or an [`LocalSet::enter`]
//! guard) the free `spawn_local` spawns into it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{AbortHandle, JoinHandle};

thread_local! {
    /// The set entered on this thread, if any: where the free
    /// [`spawn_local`](super::spawn_local) puts its tasks.
    static ENTERED: RefCell<Option<Rc<SetState>>> = const { RefCell::new(None) };
}

/// Makes `state` the entered set until the returned guard is dropped,
/// which restores the set entered before (sets nest).
fn enter_state(state: &Rc<SetState>) -> Reentered {
    let previous = ENTERED.with(|e| e.borrow_mut().replace(state.clone()));
    Reentered { previous }
}

/// Restores the previously entered set when dropped.
struct Reentered {
    previous: Option<Rc<SetState>>,
}

impl Drop for Reentered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // `try_with`: a guard dropped while the thread's locals are torn
        // down has nothing to restore.
        let _ = ENTERED.try_with(|e| *e.borrow_mut() = previous);
    }
}

/// Spawns `future` into the entered set, or gives it back when no set is
/// entered on this thread (the free `spawn_local` then spawns a plain
/// core task).
pub(super) fn spawn_into_entered<F>(future: F) -> Result<JoinHandle<F::Output>, F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match ENTERED.try_with(|e| e.borrow().clone()).ok().flatten() {
        Some(state) => Ok(spawn_member(&state, future)),
        None => Err(future),
    }
}

/// Spawns `future` on the current core as a task of the set `state`.
#[track_caller]
fn spawn_member<F>(state: &Rc<SetState>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    state.live.set(state.live.get() + 1);
    let member = Member {
        future,
        state: state.clone(),
    };
    let handle = super::spawn_local_plain(member);
    let mut tasks = state.tasks.borrow_mut();
    if tasks.len() == tasks.capacity() {
        tasks.retain(|t| !t.is_finished());
    }
    tasks.push(handle.abort_handle());
    handle
}

/// A set of `!Send` tasks on the current core (tokio's `task::LocalSet`).
///
/// ```
/// use std::rc::Rc;
/// use insane_runtime::task::LocalSet;
///
/// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
/// let local = LocalSet::new();
/// let answer = local.block_on(&rt, async {
///     let shared = Rc::new(41);
///     let copy = shared.clone();
///     insane_runtime::task::spawn_local(async move { *copy + 1 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// As in tokio, the free function [`task::spawn_local`](super::spawn_local)
/// spawns into the set while it is entered: inside
/// [`run_until`](Self::run_until) and [`block_on`](Self::block_on), in the
/// set's own tasks, and under an [`enter`](Self::enter) guard.
///
/// Difference from tokio, because every insane core already runs local
/// tasks: the set's tasks run whenever their core runs, not only while the
/// set is awaited or inside `run_until`.
pub struct LocalSet {
    state: Rc<SetState>,
}

#[derive(Default)]
struct SetState {
    /// [`LocalSet::id`].
    id: u64,
    /// Tasks spawned on the set whose future still exists.
    live: Cell<usize>,
    /// Awaiting the set: woken when the last task finishes.
    waiter: RefCell<Option<Waker>>,
    /// To abort the set's tasks when it is dropped (finished ones are
    /// pruned as the set grows).
    tasks: RefCell<Vec<AbortHandle>>,
}

impl Default for LocalSet {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one task of the set while its future exists.
struct Member<F> {
    future: F,
    state: Rc<SetState>,
}

impl<F: Future> Future for Member<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // A task of the set runs with the set entered, as in tokio: what
        // it spawns with the free `spawn_local` joins the set.
        let _entered = enter_state(&self.state);
        // SAFETY: `future` is structurally pinned: never moved out of
        // `Member`, which is itself pinned.
        unsafe { self.map_unchecked_mut(|m| &mut m.future) }.poll(cx)
    }
}

impl<F> Drop for Member<F> {
    fn drop(&mut self) {
        let live = self.state.live.get() - 1;
        self.state.live.set(live);
        if live == 0 {
            if let Some(waker) = self.state.waiter.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

impl LocalSet {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            state: Rc::new(SetState {
                id: crate::core::next_uid(),
                ..SetState::default()
            }),
        }
    }

    /// The set's id, unique in the process among runtimes and sets
    /// (tokio's `LocalSet::id`, a [`runtime::Id`](crate::runtime::Id)).
    ///
    /// ```
    /// let (a, b) = (insane_runtime::task::LocalSet::new(), insane_runtime::task::LocalSet::new());
    /// assert_ne!(a.id(), b.id());
    /// println!("local set {}", a.id());
    /// ```
    pub fn id(&self) -> crate::runtime::Id {
        crate::runtime::Id(self.state.id)
    }

    /// Spawns a `!Send` future on the current core as a task of this set.
    ///
    /// # Panics
    /// Outside an insane runtime (as [`spawn_local`](super::spawn_local)).
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_member(&self.state, future)
    }

    /// Runs `future` on the current core and returns its output (tokio's
    /// `run_until`; the set's tasks run meanwhile, and after). While
    /// `future` is polled the set is entered: the free
    /// [`spawn_local`](super::spawn_local) spawns into the set.
    ///
    /// ```
    /// use insane_runtime::task::{self, LocalSet};
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// rt.block_on(async {
    ///     let set = LocalSet::new();
    ///     let forever = set.run_until(async { task::spawn_local(std::future::pending::<()>()) }).await;
    ///     drop(set); // aborts the task spawned inside run_until
    ///     assert!(forever.await.unwrap_err().is_cancelled());
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn run_until<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            let _entered = enter_state(&self.state);
            future.as_mut().poll(cx)
        })
        .await
    }

    /// Enters the set until the guard is dropped (tokio's
    /// `LocalSet::enter`): the free [`spawn_local`](super::spawn_local)
    /// called meanwhile on this thread spawns into the set.
    ///
    /// ```
    /// use insane_runtime::task::{self, LocalSet};
    /// let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
    /// rt.block_on(async {
    ///     let set = LocalSet::new();
    ///     let task = {
    ///         let _guard = set.enter();
    ///         task::spawn_local(async { 1 })
    ///     };
    ///     set.await; // waits for the task spawned under the guard
    ///     assert!(task.is_finished());
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enter(&self) -> LocalEnterGuard {
        LocalEnterGuard {
            _entered: enter_state(&self.state),
            _not_send: PhantomData,
        }
    }

    /// Runs `future` to completion on `rt` (tokio's `LocalSet::block_on`).
    ///
    /// # Panics
    /// As the runtime's `block_on`: inside a runtime.
    #[track_caller]
    pub fn block_on<R: BlockOn, F: Future>(&self, rt: &R, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }
}

/// The guard of [`LocalSet::enter`]: the set stays entered on this thread
/// until it is dropped (tokio's `task::LocalEnterGuard`).
pub struct LocalEnterGuard {
    _entered: Reentered,
    /// Entered on this thread: the guard cannot move to another.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for LocalEnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEnterGuard").finish_non_exhaustive()
    }
}

/// A runtime [`LocalSet::block_on`] can drive: `insane_runtime`'s and the
/// `insane` facade's `Runtime`.
pub trait BlockOn {
    /// Runs `future` to completion on the runtime's core 0 (this thread).
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

impl BlockOn for crate::runtime::Runtime {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        crate::runtime::Runtime::block_on(self, future)
    }
}

/// Awaiting a set waits until every task spawned on it has finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.live.get() == 0 {
            return Poll::Ready(());
        }
        *self.state.waiter.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Dropping the set aborts its tasks that have not finished.
impl Drop for LocalSet {
    fn drop(&mut self) {
        for task in self.state.tasks.borrow_mut().drain(..) {
            task.abort();
        }
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("live_tasks", &self.state.live.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;
    use std::rc::Rc;
    use std::time::Duration;

    fn rt() -> Runtime {
        Runtime::builder().cores(1).build().unwrap()
    }

    #[test]
    fn awaiting_the_set_waits_for_all_its_tasks() {
        let rt = rt();
        let done = Rc::new(Cell::new(0));
        rt.block_on(async {
            let set = LocalSet::new();
            for i in 0..3u64 {
                let done = done.clone();
                set.spawn_local(async move {
                    crate::time::sleep(Duration::from_millis(5 * i)).await;
                    done.set(done.get() + 1);
                });
            }
            set.await;
        });
        assert_eq!(done.get(), 3);
    }

    #[test]
    fn an_empty_set_is_ready_at_once() {
        rt().block_on(LocalSet::new());
    }

    #[test]
    fn dropping_the_set_aborts_its_unfinished_tasks() {
        let rt = rt();
        rt.block_on(async {
            let set = LocalSet::new();
            let task = set.spawn_local(std::future::pending::<()>());
            let finished = set.spawn_local(async { 7 });
            assert_eq!(finished.await.unwrap(), 7);
            drop(set);
            let err = task.await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
        });
    }

    #[test]
    fn block_on_runs_the_future_with_the_sets_tasks() {
        let rt = rt();
        let set = LocalSet::new();
        let out = set.block_on(&rt, async {
            let shared = Rc::new(20);
            let copy = shared.clone();
            let a = crate::task::spawn_local(async move { *copy + 1 });
            a.await.unwrap() + *shared + 1
        });
        assert_eq!(out, 42);
    }

    #[test]
    // The handle returned from `run_until` is awaited later, on purpose.
    #[allow(clippy::async_yields_async)]
    fn spawn_local_inside_run_until_joins_the_set() {
        let rt = rt();
        rt.block_on(async {
            let set = LocalSet::new();
            let inner = set
                .run_until(async { crate::task::spawn_local(std::future::pending::<()>()) })
                .await;
            drop(set);
            assert!(inner.await.unwrap_err().is_cancelled());
        });
    }

    #[test]
    fn spawn_local_in_a_task_of_the_set_joins_the_set() {
        let rt = rt();
        let done = Rc::new(Cell::new(false));
        rt.block_on(async {
            let set = LocalSet::new();
            let flag = done.clone();
            set.spawn_local(async move {
                crate::task::spawn_local(async move {
                    crate::time::sleep(Duration::from_millis(5)).await;
                    flag.set(true);
                });
            });
            set.await; // waits for the grandchild too
            assert!(done.get());
        });
    }

    #[test]
    fn enter_guard_scopes_the_set_and_sets_nest() {
        let rt = rt();
        rt.block_on(async {
            let outer = LocalSet::new();
            let inner = LocalSet::new();
            let (in_outer, in_inner, after) = {
                let _o = outer.enter();
                let a = crate::task::spawn_local(std::future::pending::<()>());
                let b = {
                    let _i = inner.enter();
                    crate::task::spawn_local(std::future::pending::<()>())
                };
                let c = crate::task::spawn_local(std::future::pending::<()>());
                (a, b, c)
            };
            let plain = crate::task::spawn_local(async { 3 });
            drop(inner);
            assert!(in_inner.await.unwrap_err().is_cancelled());
            assert!(!in_outer.is_finished() && !after.is_finished());
            drop(outer);
            assert!(in_outer.await.unwrap_err().is_cancelled());
            assert!(
                after.await.unwrap_err().is_cancelled(),
                "back in the outer set"
            );
            assert_eq!(plain.await.unwrap(), 3, "no set entered: a plain core task");
        });
    }

    #[test]
    fn many_finished_tasks_do_not_grow_the_abort_list_without_bound() {
        let rt = rt();
        rt.block_on(async {
            let set = LocalSet::new();
            for _ in 0..1000 {
                set.spawn_local(async {}).await.unwrap();
            }
            assert!(
                set.state.tasks.borrow().len() <= 64,
                "{}",
                set.state.tasks.borrow().len()
            );
        });
    }
}
