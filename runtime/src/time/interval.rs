//! [`Interval`], [`interval`], [`interval_at`] and [`MissedTickBehavior`].

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::Instant;
use super::sleep::{Sleep, sleep_until};

/// Creates an [`Interval`] that yields with period `period`; the first tick
/// completes immediately.
///
/// Ticks that could not be taken in time (the task was busy) are handled
/// according to [`MissedTickBehavior`], [`Burst`](MissedTickBehavior::Burst)
/// by default. An interval only measures time between ticks; to run
/// something every `period` regardless of how long it takes, spawn it.
///
/// # Panics
/// When `period` is zero.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let start = Instant::now();
///     let mut interval = time::interval(Duration::from_millis(10));
///     interval.tick().await; // completes immediately
///     interval.tick().await; // 10 ms after the first
///     interval.tick().await; // 20 ms after the first
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`period` must be non-zero.");
    Interval::new(Instant::now(), period)
}

/// Creates an [`Interval`] whose first tick completes at `start` and then
/// every `period`.
///
/// # Panics
/// When `period` is zero.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     let start = Instant::now() + Duration::from_millis(10);
///     let mut interval = time::interval_at(start, Duration::from_millis(10));
///     assert_eq!(interval.tick().await, start);
///     assert_eq!(interval.tick().await, start + Duration::from_millis(10));
/// });
/// ```
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`period` must be non-zero.");
    Interval::new(start, period)
}

/// What an [`Interval`] does when ticks were missed, i.e. when
/// [`tick`](Interval::tick) was called more than 5 ms after a tick was due
/// (because the task was busy or the executor was blocked).
///
/// The examples below use a period of 50 ms and a stall that makes the
/// ticks due at 100, 150 and 200 ms late: the task calls `tick` again only
/// at 210 ms. Time in ms since the first tick:
///
/// ```text
/// expected:      0   50   100  150  200  250  300  350
/// Burst:         0   50   210* 210* 210* 250  300  350
/// Delay:         0   50   210* 260  310  360
/// Skip:          0   50   210* 250  300  350
/// ```
/// (`*`: returned at once, without waiting.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Ticks as fast as possible until caught up, then resumes the original
    /// schedule (the missed ticks all happen, late). The default.
    ///
    /// `tick` keeps returning the *scheduled* instants (100, 150, 200 above)
    /// even though they are returned at 210.
    #[default]
    Burst,

    /// Ticks once for the missed ones, then resumes with a full `period`
    /// after that tick: the schedule shifts to start at the moment of the
    /// late tick.
    Delay,

    /// Ticks once for the missed ones, then continues on the next multiple
    /// of `period` of the original schedule (missed ticks are skipped).
    Skip,
}

impl MissedTickBehavior {
    /// The next deadline after the tick scheduled at `timeout` was taken at
    /// `now`, late.
    fn next_timeout(self, timeout: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            Self::Burst => timeout + period,
            Self::Delay => now + period,
            Self::Skip => {
                let behind = (now - timeout).as_nanos() % period.as_nanos();
                let behind = u64::try_from(behind)
                    .expect("too much time has elapsed since the interval was supposed to tick");
                now + period - Duration::from_nanos(behind)
            }
        }
    }
}

/// A stream of ticks at a fixed period, created by [`interval`] and
/// [`interval_at`].
///
/// [`tick`](Self::tick) waits for the next tick and returns the instant it
/// was scheduled for. The first tick is at the start instant; later ones
/// follow every `period`, with late ticks handled according to
/// [`MissedTickBehavior`]. `Interval` is `Unpin`, `Send` and `Sync`.
#[derive(Debug)]
pub struct Interval {
    delay: Pin<Box<Sleep>>,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    fn new(start: Instant, period: Duration) -> Interval {
        Interval {
            delay: Box::pin(sleep_until(start)),
            period,
            missed_tick_behavior: MissedTickBehavior::default(),
        }
    }

    /// Completes when the next tick is due and returns the instant it was
    /// scheduled for.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the `tick()` future before it completes loses
    /// no tick.
    ///
    /// ```
    /// use insane_runtime::time::{self, Duration};
    ///
    /// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    ///     let mut interval = time::interval(Duration::from_millis(10));
    ///     let first = interval.tick().await;
    ///     let second = interval.tick().await;
    ///     assert_eq!(second - first, Duration::from_millis(10));
    /// });
    /// ```
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick: `Ready(scheduled instant)` when it is due,
    /// otherwise `Pending` with the waker of `cx` registered (only the
    /// waker of the most recent call is woken).
    ///
    /// # Panics
    /// Outside an insane runtime.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.delay.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let timeout = self.delay.deadline();
        let now = Instant::now();
        let next = if now > timeout + Duration::from_millis(5) {
            self.missed_tick_behavior
                .next_timeout(timeout, now, self.period)
        } else {
            timeout
                .checked_add(self.period)
                .unwrap_or_else(Instant::far_future)
        };
        // The next poll registers the new deadline.
        self.delay.as_mut().reset_without_reregister(next);
        Poll::Ready(timeout)
    }

    /// Resets the interval so the next tick completes one `period` from
    /// now.
    ///
    /// ```
    /// use insane_runtime::time::{self, Duration, Instant};
    ///
    /// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    ///     let mut interval = time::interval(Duration::from_millis(10));
    ///     interval.tick().await;
    ///     interval.reset();
    ///     let reset_at = Instant::now();
    ///     interval.tick().await;
    ///     assert!(reset_at.elapsed() >= Duration::from_millis(10));
    /// });
    /// ```
    pub fn reset(&mut self) {
        self.delay.as_mut().reset(Instant::now() + self.period);
    }

    /// Resets the interval so the next tick completes immediately; later
    /// ticks follow every `period` from now.
    pub fn reset_immediately(&mut self) {
        self.delay.as_mut().reset(Instant::now());
    }

    /// Resets the interval so the next tick completes after `after`.
    pub fn reset_after(&mut self, after: Duration) {
        self.delay.as_mut().reset(Instant::now() + after);
    }

    /// Resets the interval so the next tick completes at `deadline`.
    pub fn reset_at(&mut self, deadline: Instant) {
        self.delay.as_mut().reset(deadline);
    }

    /// The current [`MissedTickBehavior`].
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets the [`MissedTickBehavior`].
    ///
    /// ```
    /// use insane_runtime::time::{self, Duration, MissedTickBehavior};
    ///
    /// let mut interval = time::interval(Duration::from_millis(10));
    /// interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    /// assert_eq!(interval.missed_tick_behavior(), MissedTickBehavior::Skip);
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }

    /// The period of the interval.
    pub fn period(&self) -> Duration {
        self.period
    }
}
