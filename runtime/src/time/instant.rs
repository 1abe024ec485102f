//! [`Instant`], tokio's monotonic instant type.

use std::fmt;
use std::ops;
use std::time::Duration;

/// A measurement of a monotonically nondecreasing clock, opaque and useful
/// only with [`Duration`].
///
/// This is a thin wrapper around [`std::time::Instant`] with the methods of
/// `tokio::time::Instant`, so code written for tokio compiles unchanged.
/// Unlike `std`, subtracting a later instant from an earlier one saturates
/// to zero instead of panicking ([`duration_since`](Self::duration_since),
/// `a - b`), as in tokio.
///
/// ```
/// use insane_runtime::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let later = start + Duration::from_millis(5);
/// assert_eq!(later - start, Duration::from_millis(5));
/// assert_eq!(start - later, Duration::ZERO); // saturates
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    std: std::time::Instant,
}

impl Instant {
    /// Returns an instant corresponding to "now".
    ///
    /// Inside a runtime whose time is paused ([`pause`](super::pause)),
    /// this is the paused clock; elsewhere the real monotonic clock.
    ///
    /// ```
    /// use insane_runtime::time::Instant;
    ///
    /// let now = Instant::now();
    /// assert!(Instant::now() >= now);
    /// ```
    #[must_use]
    pub fn now() -> Instant {
        Instant {
            std: super::clock::now(),
        }
    }

    /// Creates an `Instant` from a [`std::time::Instant`].
    #[must_use]
    pub fn from_std(std: std::time::Instant) -> Instant {
        Instant { std }
    }

    /// An instant about 30 years from now: what `sleep` and `timeout` use
    /// when `now + duration` does not fit (tokio does the same).
    pub(crate) fn far_future() -> Instant {
        Instant::now() + Duration::from_secs(86_400 * 365 * 30)
    }

    /// Converts this `Instant` into a [`std::time::Instant`].
    #[must_use]
    pub fn into_std(self) -> std::time::Instant {
        self.std
    }

    /// The amount of time elapsed from `earlier` to `self`, or zero if
    /// `earlier` is later than `self`.
    ///
    /// ```
    /// use insane_runtime::time::{Duration, Instant};
    ///
    /// let a = Instant::now();
    /// let b = a + Duration::from_secs(1);
    /// assert_eq!(b.duration_since(a), Duration::from_secs(1));
    /// assert_eq!(a.duration_since(b), Duration::ZERO);
    /// ```
    #[must_use]
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.std.saturating_duration_since(earlier.std)
    }

    /// The amount of time elapsed from `earlier` to `self`, or `None` if
    /// `earlier` is later than `self`.
    ///
    /// ```
    /// use insane_runtime::time::{Duration, Instant};
    ///
    /// let a = Instant::now();
    /// let b = a + Duration::from_secs(1);
    /// assert_eq!(b.checked_duration_since(a), Some(Duration::from_secs(1)));
    /// assert_eq!(a.checked_duration_since(b), None);
    /// ```
    #[must_use]
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.std.checked_duration_since(earlier.std)
    }

    /// The amount of time elapsed from `earlier` to `self`, or zero if
    /// `earlier` is later than `self`.
    #[must_use]
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.std.saturating_duration_since(earlier.std)
    }

    /// The amount of time elapsed since this instant was created (zero if
    /// it lies in the future).
    ///
    /// ```
    /// use insane_runtime::time::{Duration, Instant};
    ///
    /// let start = Instant::now();
    /// std::thread::sleep(Duration::from_millis(2));
    /// assert!(start.elapsed() >= Duration::from_millis(2));
    /// ```
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Instant::now() - *self
    }

    /// `self + duration`, or `None` if the result cannot be represented.
    #[must_use]
    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.std.checked_add(duration).map(Instant::from_std)
    }

    /// `self - duration`, or `None` if the result cannot be represented.
    #[must_use]
    pub fn checked_sub(&self, duration: Duration) -> Option<Instant> {
        self.std.checked_sub(duration).map(Instant::from_std)
    }
}

impl From<std::time::Instant> for Instant {
    fn from(time: std::time::Instant) -> Instant {
        Instant::from_std(time)
    }
}

impl From<Instant> for std::time::Instant {
    fn from(time: Instant) -> std::time::Instant {
        time.into_std()
    }
}

impl ops::Add<Duration> for Instant {
    type Output = Instant;

    /// # Panics
    /// When the result cannot be represented (use
    /// [`checked_add`](Instant::checked_add) to avoid that).
    fn add(self, other: Duration) -> Instant {
        Instant::from_std(self.std + other)
    }
}

impl ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl ops::Sub for Instant {
    type Output = Duration;

    /// Saturates to zero when `rhs` is later than `self`.
    fn sub(self, rhs: Instant) -> Duration {
        self.std.saturating_duration_since(rhs.std)
    }
}

impl ops::Sub<Duration> for Instant {
    type Output = Instant;

    /// # Panics
    /// When the result cannot be represented (use
    /// [`checked_sub`](Instant::checked_sub) to avoid that).
    fn sub(self, rhs: Duration) -> Instant {
        Instant::from_std(self.std - rhs)
    }
}

impl ops::SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, fmt: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.std.fmt(fmt)
    }
}
