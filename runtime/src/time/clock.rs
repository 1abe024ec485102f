//! The core's clock and the test-util API that alters it: [`pause`],
//! [`resume`] and [`advance`] (tokio's `time::pause`, `resume`, `advance`).
//!
//! Every core owns a [`Clock`]. It reads the real time until the first
//! [`pause`]; from then on it is *virtual*: frozen while paused, moved by
//! [`advance`] and by auto-advance (the idle core jumps to its next timer
//! instead of sleeping), and, after [`resume`], running again at the real
//! rate from wherever it stood (so it never goes backwards).
//!
//! [`Instant::now`](super::Instant::now) reads the clock of the current
//! core. So that code which never pauses pays nothing for this, a process
//! wide flag records whether any clock was ever altered; until then
//! `Instant::now()` is `std::time::Instant::now()` behind one relaxed load
//! and branch.
//!
//! Pausing needs a runtime of one core (insane's equivalent of tokio's
//! `current_thread` runtime, to which tokio restricts pausing): it is then
//! the runtime's clock, and "the runtime has nothing to do but wait for a
//! timer" is a question one core can answer alone.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::context;
use crate::core::Core;

/// Set (never cleared) once any core's clock was paused: from then on
/// `Instant::now()` asks the current core's clock.
static ALTERED: AtomicBool = AtomicBool::new(false);

/// What the clock reads.
#[derive(Clone, Copy, Debug)]
enum State {
    /// The real time (never paused).
    Real,
    /// Paused at `at`.
    Frozen { at: Instant },
    /// Resumed: `base` at the real instant `since`, running at the real rate.
    Running { base: Instant, since: Instant },
}

/// One core's clock (see the module documentation).
#[derive(Debug)]
pub(crate) struct Clock {
    state: Cell<State>,
}

impl Clock {
    /// A clock that reads the real time.
    pub(crate) fn new() -> Self {
        Self {
            state: Cell::new(State::Real),
        }
    }

    /// The current time of this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self.state.get() {
            State::Real => Instant::now(),
            State::Frozen { at } => at,
            State::Running { base, since } => base + since.elapsed(),
        }
    }

    /// The instant the clock is frozen at, or `None` when it runs.
    #[inline]
    pub(crate) fn frozen(&self) -> Option<Instant> {
        match self.state.get() {
            State::Frozen { at } => Some(at),
            _ => None,
        }
    }

    /// Freezes the clock at `at` (which the caller took from `now()`, maybe
    /// rounded up).
    fn freeze(&self, at: Instant) -> Result<(), &'static str> {
        if self.frozen().is_some() {
            return Err("time is already frozen");
        }
        ALTERED.store(true, Ordering::SeqCst);
        self.state.set(State::Frozen { at });
        Ok(())
    }

    /// Lets the clock run again from where it is frozen.
    fn unfreeze(&self) -> Result<(), &'static str> {
        let at = self.frozen().ok_or("time is not frozen")?;
        self.state.set(State::Running {
            base: at,
            since: Instant::now(),
        });
        Ok(())
    }

    /// Moves a frozen clock forward by `duration`; returns the new time.
    fn advance(&self, duration: Duration) -> Result<Instant, &'static str> {
        let at = self.frozen().ok_or("time is not frozen")?;
        let at = at
            .checked_add(duration)
            .ok_or("advancing the paused clock overflows `Instant`")?;
        self.state.set(State::Frozen { at });
        Ok(at)
    }

    /// Auto-advance: moves a frozen clock forward to `deadline` (never
    /// backwards). Returns false when the clock is not frozen.
    pub(crate) fn advance_to(&self, deadline: Instant) -> bool {
        match self.frozen() {
            Some(at) => {
                self.state.set(State::Frozen {
                    at: at.max(deadline),
                });
                true
            }
            None => false,
        }
    }
}

/// The time `Instant::now()` reports on this thread: the current core's
/// clock, or the real time outside a runtime (and always while no clock
/// was ever paused).
#[inline]
pub(crate) fn now() -> Instant {
    if !ALTERED.load(Ordering::Relaxed) {
        return Instant::now();
    }
    context::with_core(|core| core.clock.now()).unwrap_or_else(Instant::now)
}

/// Runs `f` on the current core, or panics with tokio's message for a
/// clock operation outside a runtime.
#[track_caller]
fn with_clock_core<R>(f: impl FnOnce(&Core) -> Result<R, &'static str>) -> R {
    let result = context::with_core(f)
        .unwrap_or(Err("time cannot be frozen from outside the insane runtime"));
    match result {
        Ok(r) => r,
        Err(msg) => panic!("{msg}"),
    }
}

/// Pauses time.
///
/// The current value of [`Instant::now()`](super::Instant::now) is saved
/// and every later call on this runtime returns it, until it is moved by
/// [`advance`] or by *auto-advance*: when time is paused and the runtime
/// has nothing to run but timers, the clock jumps to the next timer's
/// deadline at once, instead of sleeping. A `sleep` of an hour therefore
/// completes instantly, and timer-heavy code is tested deterministically.
/// Only insane's [`Instant`](super::Instant) is affected;
/// `std::time::Instant` runs on.
///
/// As in tokio, pausing needs a runtime of one core (`cores(1)`,
/// `flavor = "current_thread"`, the default of `#[insane::test]`); a test
/// can start paused with `#[insane::test(start_paused = true)]`.
///
/// Insane's timers tick every millisecond; pausing rounds the clock up to
/// the core's next tick (less than 1 ms later), so that sleeps and
/// advances by whole milliseconds land exactly on their deadlines.
///
/// # Panics
/// If time is already frozen ("time is already frozen"), outside a
/// runtime, or on a runtime of more than one core.
///
/// # Auto-advance and I/O
/// Auto-advance happens whenever no task is ready and no I/O event is
/// pending at that moment, as in tokio: a task waiting on a socket with a
/// timeout sees the timeout fire at once unless the data is already there.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     time::pause();
///     let start = Instant::now();
///     time::sleep(Duration::from_secs(3600)).await; // returns at once
///     assert_eq!(start.elapsed(), Duration::from_secs(3600));
/// });
/// ```
#[track_caller]
pub fn pause() {
    with_clock_core(|core| {
        let cores = core.runtime.cores.len();
        if cores != 1 {
            return Err(
                "`time::pause()` requires a runtime of one core (`cores(1)`, \
                 `flavor = \"current_thread\"`, the default of #[insane::test]), \
                 like tokio's current_thread runtime: the paused clock belongs to the \
                 runtime, and auto-advance needs every core idle. This is a bug in the \
                 runtime configuration.",
            );
        }
        let now = core.clock.now();
        // Round up to the wheel's next tick, so that deadlines whole
        // milliseconds away fall exactly on ticks.
        let at = core
            .timers
            .try_borrow()
            .map_or(now, |wheel| wheel.ceil_to_tick(now));
        core.clock.freeze(at)?;
        core.now.set(at);
        Ok(())
    })
}

/// Resumes time.
///
/// The clock runs again at the real rate, from the value it was frozen at
/// (it never goes backwards: time advanced while paused stays advanced).
///
/// # Panics
/// If time is not frozen ("time is not frozen") or outside a runtime.
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     time::pause();
///     time::advance(Duration::from_secs(60)).await;
///     let paused_at = Instant::now();
///     time::resume();
///     time::sleep(Duration::from_millis(2)).await; // real time again
///     assert!(Instant::now() >= paused_at + Duration::from_millis(2));
/// });
/// ```
#[track_caller]
pub fn resume() {
    with_clock_core(|core| core.clock.unfreeze())
}

/// Advances time.
///
/// Moves the paused clock forward by `duration` in one jump: every timer
/// whose deadline is at or before the new time fires (in deadline order),
/// and the tasks they wake run once before `advance` returns; later timers
/// do not fire. [`Instant::now()`](super::Instant::now) then reads exactly
/// `duration` later than before.
///
/// # Panics
/// If time is not frozen ("time is not frozen") or outside a runtime (when
/// the future is first polled, as tokio's).
///
/// ```
/// use insane_runtime::time::{self, Duration, Instant};
///
/// insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
///     time::pause();
///     let start = Instant::now();
///     let timer = insane_runtime::spawn(time::sleep(Duration::from_secs(5)));
///     time::advance(Duration::from_secs(5)).await;
///     assert!(timer.is_finished());
///     assert_eq!(start.elapsed(), Duration::from_secs(5));
/// });
/// ```
pub async fn advance(duration: Duration) {
    with_clock_core(|core| {
        let at = core.clock.advance(duration)?;
        core.now.set(at);
        // Fire what is due now, so the woken tasks are queued ahead of the
        // yield below. If the wheel is busy (cannot happen from a task),
        // the core's next turn fires them.
        if let Ok(mut wheel) = core.timers.try_borrow_mut() {
            wheel.process(at);
        }
        Ok(())
    });
    crate::task::yield_now().await;
}
