//! [`Sleep`], [`sleep`] and [`sleep_until`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::Instant;
use super::wheel::TimerKey;
use crate::context;

/// Waits until `duration` has elapsed.
///
/// Equivalent to `sleep_until(Instant::now() + duration)`; a duration too
/// large to add to the clock sleeps for about 30 years instead of
/// overflowing. No work is done while sleeping: the task is woken by its
/// core's timer wheel.
///
/// Timers have millisecond granularity: the wake-up happens at the first
/// millisecond tick at or after the deadline, never before it.
/// `sleep(Duration::ZERO)` completes at its first poll.
///
/// The returned [`Sleep`] does nothing until polled, and may be created
/// outside a runtime; polling it outside an insane runtime panics.
///
/// # Cancellation
/// Dropping the `Sleep` cancels it (its timer entry is removed).
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let start = Instant::now();
///     time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let deadline = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(Instant::far_future);
    Sleep::new(deadline)
}

/// Waits until `deadline` is reached.
///
/// A deadline in the past completes at the first poll. Otherwise the same
/// rules as [`sleep`] apply.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(10);
///     time::sleep_until(deadline).await;
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// Waits until `deadline` is reached, to the microsecond: an insane
/// extension (tokio has no such timer).
///
/// [`sleep_until`] wakes at the first millisecond tick at or after its
/// deadline, up to 1 ms late. This one wakes at the first turn of its
/// core's loop at or after the deadline itself: a core busy-polling fires
/// it within one turn (µs), a parked core sleeps exactly until it (the
/// reactors' park timeouts are in nanoseconds; the kernel's timer slack,
/// 50 µs by default, still applies). It does not make an idle core spin.
/// Precise timers sit in a short list beside the wheel, scanned when one
/// is due: meant for a few protocol timers per core (a retransmission
/// timeout of a few hundred µs), not for thousands. [`Sleep::reset`]
/// keeps the timer precise.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let deadline = Instant::now() + Duration::from_micros(300);
///     time::sleep_until_precise(deadline).await;
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn sleep_until_precise(deadline: Instant) -> Sleep {
    let mut sleep = Sleep::new(deadline);
    sleep.precise = true;
    sleep
}

pin_project! {
    /// Future returned by [`sleep`] and [`sleep_until`]: completes once its
    /// deadline has been reached.
    ///
    /// `Sleep` is `!Unpin` (as in tokio); pin it with [`std::pin::pin!`] or
    /// [`Box::pin`] to poll it or to call [`reset`](Sleep::reset) from a
    /// `select!`-style loop. It is `Send + Sync`.
    ///
    /// On its first poll it puts its waker into the timer wheel of the core
    /// polling it; later polls only swap the waker when it changed. If a
    /// `Sleep` moves to another core, it registers there anew and its old
    /// entry fires harmlessly. Dropping it removes its entry.
    ///
    /// ```
    /// use insane_runtime::time::{self, Duration, Instant};
    ///
    /// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    ///     let sleep = time::sleep(Duration::from_millis(50));
    ///     let mut sleep = std::pin::pin!(sleep);
    ///     // Bring the deadline closer.
    ///     let sooner = Instant::now() + Duration::from_millis(5);
    ///     sleep.as_mut().reset(sooner);
    ///     sleep.as_mut().await;
    ///     assert!(sleep.is_elapsed());
    ///     assert_eq!(sleep.deadline(), sooner);
    /// });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Sleep {
        deadline: Instant,
        // The entry in the wheel of the core that last polled us, if any.
        entry: Option<TimerKey>,
        // Fires at the deadline itself, not at the tick after it.
        precise: bool,
        #[pin]
        _pinned: PhantomPinned,
    }

    impl PinnedDrop for Sleep {
        fn drop(this: Pin<&mut Self>) {
            deregister(this.project().entry);
        }
    }
}

impl Sleep {
    pub(crate) fn new(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            entry: None,
            precise: false,
            _pinned: PhantomPinned,
        }
    }

    /// The instant at which this future completes.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (then the next poll returns
    /// `Ready`).
    #[must_use]
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline to `deadline`, before or after the sleep
    /// completed, without allocating a new timer.
    ///
    /// When called on the core whose wheel holds the timer, the task that
    /// is waiting on it is woken at the new deadline (at once if it already
    /// passed) without being polled again first.
    ///
    /// ```
    /// use insane_runtime::time::{self, Duration, Instant};
    ///
    /// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    ///     let mut sleep = Box::pin(time::sleep(Duration::from_millis(5)));
    ///     (&mut sleep).await;
    ///     // Completed futures can be re-armed.
    ///     let again = Instant::now() + Duration::from_millis(5);
    ///     sleep.as_mut().reset(again);
    ///     assert!(!sleep.is_elapsed());
    ///     sleep.await;
    ///     assert!(Instant::now() >= again);
    /// });
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.project();
        *this.deadline = deadline;
        if let Some(key) = *this.entry {
            let moved = context::with_core(|core| {
                core.timers
                    .try_borrow_mut()
                    .is_ok_and(|mut wheel| wheel.reset(key, deadline.into_std()))
            })
            .unwrap_or(false);
            if !moved {
                // Fired already, or held by another core's wheel: the next
                // poll registers again.
                *this.entry = None;
            }
        }
    }

    /// Sets the deadline and forgets the timer entry: the next poll
    /// registers anew (used by `Interval` right after a tick).
    pub(crate) fn reset_without_reregister(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.project();
        *this.deadline = deadline;
        deregister(this.entry);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let deadline = this.deadline.into_std();
        let entry = this.entry;
        let precise = *this.precise;
        // Cooperative: a ready sleep spends a unit of the task's budget,
        // and a spent budget makes it yield first (tokio's behaviour).
        let coop = std::task::ready!(crate::task::coop::poll_proceed(cx));
        context::expect_core("polling insane_runtime::time::Sleep", |core| {
            // The loop's cached clock is never ahead of the core's clock
            // (real time, or the paused one), so it can say "elapsed" but
            // not "not yet": only deadlines within a tick of it need a
            // clock read. A later deadline that has in fact passed (the
            // cache is stale) fires at the next turn.
            let cached = core.now.get();
            let elapsed = cached >= deadline
                || (deadline - cached < Duration::from_millis(1) && core.clock.now() >= deadline);
            if elapsed {
                if let Some(key) = entry.take() {
                    // Bind first so the waker is dropped after the borrow.
                    let old = core.timers.borrow_mut().remove(key);
                    drop(old);
                }
                coop.made_progress();
                return Poll::Ready(());
            }
            let mut wheel = core.timers.borrow_mut();
            match *entry {
                Some(key) if wheel.update_waker(key, cx.waker()) => {}
                _ if precise => *entry = Some(wheel.insert_precise(deadline, cx.waker().clone())),
                _ => *entry = Some(wheel.insert(deadline, cx.waker().clone())),
            }
            Poll::Pending
        })
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.entry.is_some())
            .finish()
    }
}

/// Removes the entry, if it is in the current core's wheel; an entry of
/// another core (or one that fired) is left alone.
fn deregister(entry: &mut Option<TimerKey>) {
    let Some(key) = entry.take() else { return };
    let waker = context::with_core(|core| {
        core.timers
            .try_borrow_mut()
            .ok()
            .and_then(|mut wheel| wheel.remove(key))
    });
    drop(waker);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn sleep_is_send_sync_and_not_unpin() {
        assert_send_sync::<Sleep>();
        // If `Sleep` were `Unpin`, this call would be ambiguous and fail to
        // compile.
        trait AmbiguousIfUnpin<A> {
            fn some_item() {}
        }
        impl<T: ?Sized> AmbiguousIfUnpin<()> for T {}
        impl<T: ?Sized + Unpin> AmbiguousIfUnpin<u8> for T {}
        <Sleep as AmbiguousIfUnpin<_>>::some_item();
    }

    #[test]
    #[should_panic(expected = "inside an insane runtime")]
    fn polling_outside_a_runtime_panics() {
        let sleep = std::pin::pin!(sleep(Duration::from_millis(1)));
        let waker = std::task::Waker::noop();
        let _ = sleep.poll(&mut Context::from_waker(waker));
    }

    #[test]
    fn dropping_outside_a_runtime_is_fine() {
        drop(sleep(Duration::from_secs(1)));
    }
}
