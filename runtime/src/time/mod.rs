//! Utilities for tracking time: [`sleep`], [`timeout`] and [`interval`],
//! with tokio's names and semantics (`tokio::time` code ports by changing
//! the import).
//!
//! Every core has its own hierarchical timer wheel with 1 ms ticks. A
//! [`Sleep`] puts its task's waker into the wheel of the core that polls
//! it; the core fires due timers on every turn of its loop and, when idle,
//! parks exactly until the next one is due. Timers never fire before their
//! deadline: a deadline is rounded up to the next millisecond tick. Nothing
//! is shared between cores, so timers cost no synchronisation.
//! [`sleep_until_precise`] (an insane extension) fires at its deadline
//! itself, for protocol timers of a few hundred microseconds.
//!
//! The futures of this module may be created anywhere but must be polled
//! inside an insane runtime (polling them elsewhere panics, as in tokio).
//!
//! # Paused time
//!
//! For tests, [`pause`] freezes the clock of a one-core runtime (as tokio's
//! `test-util` does on its `current_thread` runtime): [`Instant::now`]
//! stands still, [`advance`] moves it and fires the timers due, and a
//! runtime with nothing to run but timers jumps to the next one instead of
//! sleeping, so timer-heavy code is tested instantly and deterministically.
//! [`resume`] lets the clock run again. `#[insane::test(start_paused =
//! true)]` starts a test paused.
//!
//! ```
//! use insane_runtime::time::{self, Duration, Instant};
//!
//! insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
//!     time::pause();
//!     let start = Instant::now();
//!     let slow = time::sleep(Duration::from_secs(600));
//!     assert!(time::timeout(Duration::from_secs(60), slow).await.is_err());
//!     assert_eq!(start.elapsed(), Duration::from_secs(60)); // no real minute passed
//! });
//! ```
//!
//! ```
//! use insane_runtime::time::{self, Duration, Instant};
//!
//! insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
//!     let start = Instant::now();
//!     time::sleep(Duration::from_millis(10)).await;
//!
//!     let slow = time::sleep(Duration::from_secs(60));
//!     assert!(time::timeout(Duration::from_millis(10), slow).await.is_err());
//!
//!     let mut ticks = time::interval(Duration::from_millis(5));
//!     for _ in 0..3 {
//!         ticks.tick().await;
//!     }
//!     assert!(start.elapsed() >= Duration::from_millis(30));
//! });
//! ```

mod clock;
pub mod error;
mod instant;
mod interval;
mod sleep;
mod timeout;
pub(crate) mod wheel;

pub use std::time::Duration;

pub(crate) use clock::Clock;
pub use clock::{advance, pause, resume};
pub use instant::Instant;
pub use interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until, sleep_until_precise};
pub use timeout::{Timeout, timeout, timeout_at};
