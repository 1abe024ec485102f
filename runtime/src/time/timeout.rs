//! [`Timeout`], [`timeout`] and [`timeout_at`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::Instant;
use super::error::Elapsed;
use super::sleep::{Sleep, sleep_until};
use crate::task::coop;

/// Requires `future` to complete before `duration` has elapsed.
///
/// Resolves to `Ok(output)` if the future completed in time, otherwise to
/// `Err(`[`Elapsed`]`)`, and the future is dropped together with the
/// `Timeout`. The inner future is polled first on every poll, so a future
/// that is ready immediately wins even with a zero duration. A duration too
/// large to add to the clock means "about 30 years".
///
/// Polling the `Timeout` outside an insane runtime panics.
///
/// # Cancellation
/// Cancelling a timeout is done by dropping the future; no other cleanup
/// is needed.
///
/// ```
/// use insane_runtime::time::{self, Duration};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let quick = time::timeout(Duration::from_secs(1), async { 7 }).await;
///     assert_eq!(quick, Ok(7));
///
///     let never = std::future::pending::<()>();
///     assert!(time::timeout(Duration::from_millis(5), never).await.is_err());
/// });
/// ```
pub fn timeout<F>(duration: Duration, future: F) -> Timeout<F::IntoFuture>
where
    F: IntoFuture,
{
    let delay = match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline),
        None => sleep_until(Instant::far_future()),
    };
    Timeout::new(future.into_future(), delay)
}

/// Requires `future` to complete before `deadline` is reached.
///
/// Same as [`timeout`] with an absolute deadline.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     let slow = time::sleep(Duration::from_secs(10));
///     assert!(time::timeout_at(deadline, slow).await.is_err());
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn timeout_at<F>(deadline: Instant, future: F) -> Timeout<F::IntoFuture>
where
    F: IntoFuture,
{
    Timeout::new(future.into_future(), sleep_until(deadline))
}

pin_project! {
    /// Future returned by [`timeout`] and [`timeout_at`]: the inner future
    /// raced against a [`Sleep`].
    ///
    /// Its output is `Result<T::Output, Elapsed>`. Like `Sleep` it is
    /// `!Unpin`.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub struct Timeout<T> {
        #[pin]
        value: T,
        #[pin]
        delay: Sleep,
    }
}

impl<T> Timeout<T> {
    pub(crate) fn new(value: T, delay: Sleep) -> Timeout<T> {
        Timeout { value, delay }
    }

    /// A reference to the inner future.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// A mutable reference to the inner future.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Consumes the `Timeout`, returning the inner future.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Future> Future for Timeout<T> {
    type Output = Result<T::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        // The inner future first: if it is ready, the deadline does not
        // matter (tokio's order).
        let had_budget = coop::has_budget_remaining();
        if let Poll::Ready(v) = me.value.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // If the inner future spent the last of the task's budget, the
        // deadline is checked anyway (unconstrained): otherwise a loop of
        // cooperative futures would keep the `Sleep` from ever firing.
        let delay = me.delay;
        let poll_delay = || match delay.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed::new())),
            Poll::Pending => Poll::Pending,
        };
        if had_budget && !coop::has_budget_remaining() {
            coop::with_unconstrained(poll_delay)
        } else {
            poll_delay()
        }
    }
}
