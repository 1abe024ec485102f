//! Cooperative scheduling: the per-task poll budget.
//!
//! A single poll of a task can do a lot of work if everything it awaits is
//! ready: a loop over an always-ready future never returns `Pending`, so it
//! never gives its core back, and on a thread-per-core runtime every other
//! task of that core (and its timers and sockets) waits. insane therefore
//! gives each task a **budget of 128 units per poll**, tokio's number. Each
//! time a budget-aware ("cooperative") future is ready it spends one unit;
//! when the budget is spent, the next cooperative future returns `Pending`
//! (after waking its task), so the task goes to the back of its core's run
//! queue and gets a fresh budget at its next poll.
//!
//! # What counts
//!
//! In insane's runtime these futures spend budget when they are ready, and
//! return `Pending` when it is spent:
//! - [`JoinHandle`](super::JoinHandle) (and so `JoinSet::join_next`),
//! - [`time::Sleep`](crate::time::Sleep) (and so
//!   [`time::Interval::tick`](crate::time::Interval::tick)),
//! - [`consume_budget`].
//!
//! [`time::Timeout`](crate::time::Timeout) checks its deadline even when
//! its inner future spent the budget (as tokio's does), so a timeout around
//! a loop of cooperative futures fires. [`yield_now`](super::yield_now)
//! always ends the poll, which refills the budget. A pending future spends
//! nothing.
//!
//! What does **not** count, unlike under tokio: `insane::sync` (tokio's own
//! channels and locks take part in tokio's budget only inside a tokio
//! runtime) and anything not written for insane. A loop over such futures
//! that are always ready must call [`consume_budget`] itself. A future that
//! never returns `Pending` at all cannot be interrupted by any budget, here
//! as under tokio.
//!
//! [`unconstrained`] opts a future out of the budget.
//!
//! ```
//! use insane_runtime::task::coop;
//! use insane_runtime::time::{timeout, Duration};
//! # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
//! // Always ready, but cooperative: the timeout still fires.
//! let spin = async {
//!     loop {
//!         coop::consume_budget().await;
//!     }
//! };
//! assert!(timeout(Duration::from_millis(10), spin).await.is_err());
//! # });
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Units of budget a task gets at the start of every poll (tokio's value).
pub(crate) const INITIAL: u8 = 128;

/// A task's remaining budget; `None` means unconstrained (outside a task,
/// on blocking threads, inside [`unconstrained`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget(Option<u8>);

impl Budget {
    const UNCONSTRAINED: Budget = Budget(None);

    fn has_remaining(self) -> bool {
        self.0.is_none_or(|n| n > 0)
    }
}

thread_local! {
    static BUDGET: Cell<Budget> = const { Cell::new(Budget::UNCONSTRAINED) };
}

#[inline]
fn get() -> Budget {
    BUDGET.try_with(Cell::get).unwrap_or(Budget::UNCONSTRAINED)
}

#[inline]
fn set(budget: Budget) {
    let _ = BUDGET.try_with(|c| c.set(budget));
}

/// Restores the budget that was current when it was made.
struct ResetGuard(Budget);

impl Drop for ResetGuard {
    fn drop(&mut self) {
        set(self.0);
    }
}

/// Runs `f` (one poll of a task) with a fresh budget; restores the previous
/// budget afterwards, even if `f` panics.
#[inline]
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    with(Budget(Some(INITIAL)), f)
}

/// Runs `f` unconstrained; restores the previous budget afterwards.
#[inline]
pub(crate) fn with_unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with(Budget::UNCONSTRAINED, f)
}

#[inline]
fn with<R>(budget: Budget, f: impl FnOnce() -> R) -> R {
    let _reset = ResetGuard(get());
    set(budget);
    f()
}

/// Lifts the budget for the rest of the current poll (used by
/// `block_in_place`: the task has held its core for long anyway).
pub(crate) fn stop() {
    set(Budget::UNCONSTRAINED);
}

/// Whether the current task still has budget left (always `true` outside
/// a task and inside [`unconstrained`]).
///
/// A hand-written combinator can use it to tell whether it was its inner
/// future that spent the budget, as [`time::Timeout`](crate::time::Timeout)
/// does to check its deadline anyway.
///
/// ```
/// use insane_runtime::task::coop;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// assert!(coop::has_budget_remaining());
/// # });
/// assert!(coop::has_budget_remaining()); // outside a runtime: unconstrained
/// ```
pub fn has_budget_remaining() -> bool {
    get().has_remaining()
}

/// Spends one unit of budget if there is one, or wakes the task and
/// returns `Pending` if the budget is spent. Like tokio's
/// `task::coop::poll_proceed`.
///
/// The unit is given back when the returned [`RestoreOnPending`] is
/// dropped, unless [`RestoreOnPending::made_progress`] was called: a leaf
/// future calls it when it is about to return `Ready`.
///
/// ```
/// use std::pin::Pin;
/// use std::task::{ready, Context, Poll};
/// use insane_runtime::task::coop;
///
/// /// A future that is always ready but cooperates with the scheduler.
/// struct Tick;
///
/// impl std::future::Future for Tick {
///     type Output = ();
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
///         let coop = ready!(coop::poll_proceed(cx));
///         coop.made_progress();
///         Poll::Ready(())
///     }
/// }
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// for _ in 0..1000 {
///     Tick.await; // yields to the core every 128 ticks
/// }
/// # });
/// ```
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    let before = get();
    match before.0 {
        None => Poll::Ready(RestoreOnPending::new(Budget::UNCONSTRAINED)),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            set(Budget(Some(n - 1)));
            Poll::Ready(RestoreOnPending::new(before))
        }
    }
}

/// Given by [`poll_proceed`]: gives the unit of budget back when dropped,
/// unless [`made_progress`](Self::made_progress) was called. Like tokio's
/// `task::coop::RestoreOnPending`.
///
/// ```
/// use std::task::{Context, Poll, Waker};
/// use insane_runtime::task::coop;
/// let mut cx = Context::from_waker(Waker::noop());
/// if let Poll::Ready(restore) = coop::poll_proceed(&mut cx) {
///     restore.made_progress();
/// }
/// ```
#[must_use = "drop it to give the budget back, or call made_progress()"]
pub struct RestoreOnPending {
    /// The budget before `poll_proceed`; unconstrained once progress was
    /// made (nothing to restore then).
    before: Cell<Budget>,
    /// Bound to the thread whose budget it restores.
    _not_send: PhantomData<*mut ()>,
}

impl RestoreOnPending {
    fn new(before: Budget) -> Self {
        Self {
            before: Cell::new(before),
            _not_send: PhantomData,
        }
    }

    /// The caller made progress: keep the unit spent.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// let mut cx = Context::from_waker(Waker::noop());
    /// if let Poll::Ready(restore) = insane_runtime::task::coop::poll_proceed(&mut cx) {
    ///     restore.made_progress();
    /// }
    /// ```
    pub fn made_progress(&self) {
        self.before.set(Budget::UNCONSTRAINED);
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        let before = self.before.get();
        if before != Budget::UNCONSTRAINED {
            set(before);
        }
    }
}

impl fmt::Debug for RestoreOnPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestoreOnPending").finish_non_exhaustive()
    }
}

/// Makes `future` spend the task's budget: each poll of it takes one unit
/// (given back if the poll made no progress), and once the budget is spent
/// it yields to the core instead of polling (tokio's
/// `task::coop::cooperative`). For futures that are often ready at once and
/// do not count themselves, e.g. a channel of another library.
///
/// ```
/// use insane_runtime::task::coop;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut ticks = 0;
/// for _ in 0..1000 {
///     coop::cooperative(std::future::ready(())).await; // yields every 128
///     ticks += 1;
/// }
/// assert_eq!(ticks, 1000);
/// # });
/// ```
pub fn cooperative<F: Future>(future: F) -> Coop<F> {
    Coop { future }
}

pin_project! {
    /// The future of [`cooperative`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Coop<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Coop<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let coop = std::task::ready!(poll_proceed(cx));
        let out = self.project().future.poll(cx);
        if out.is_ready() {
            coop.made_progress();
        }
        out
    }
}

impl<F> fmt::Debug for Coop<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coop").finish_non_exhaustive()
    }
}

/// Spends one unit of the task's budget, yielding to the core first if the
/// budget is spent. Like `tokio::task::consume_budget`: call it in a loop
/// whose futures are always ready and do not count themselves (e.g.
/// `insane::sync` channels, CPU work between awaits).
///
/// ```
/// use insane_runtime::task;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut sum = 0u64;
/// for i in 0..10_000u64 {
///     sum += i;
///     task::consume_budget().await; // other tasks run every 128 rounds
/// }
/// assert_eq!(sum, 49_995_000);
/// # });
/// ```
pub async fn consume_budget() {
    let mut spent = false;
    std::future::poll_fn(move |cx| {
        if spent {
            return Poll::Ready(());
        }
        let restore = std::task::ready!(poll_proceed(cx));
        restore.made_progress();
        spent = true;
        Poll::Ready(())
    })
    .await
}

pin_project! {
    /// Future returned by [`unconstrained`]: polls the inner future without
    /// a budget. Like `tokio::task::Unconstrained`.
    ///
    /// ```
    /// use insane_runtime::task::{self, Unconstrained};
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let fut: Unconstrained<_> = task::unconstrained(async { 1 });
    /// assert_eq!(fut.await, 1);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Unconstrained<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        with_unconstrained(|| inner.poll(cx))
    }
}

impl<F> fmt::Debug for Unconstrained<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unconstrained").finish_non_exhaustive()
    }
}

/// Opts `future` out of the cooperative budget: cooperative futures inside
/// it never return `Pending` because of the budget, and spend none of the
/// enclosing task's. Like `tokio::task::unconstrained`; the same warning
/// applies: an always-ready loop inside it holds the core until it ends.
///
/// ```
/// use insane_runtime::task;
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// task::unconstrained(async {
///     for _ in 0..1000 {
///         task::consume_budget().await; // never yields in here
///     }
/// })
/// .await;
/// # });
/// ```
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { inner: future }
}
