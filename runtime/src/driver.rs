//! The kernel I/O driver of a core: what tokio-style sockets need from
//! io_uring or epoll, whichever the core runs.
//!
//! Sockets are readiness-based (like tokio): they try the non-blocking
//! syscall and, on `WouldBlock`, ask the core's [`IoDriver`] to wake them
//! when the fd becomes ready. io_uring implements this with `POLL_ADD`,
//! epoll with edge-triggered registrations. Completion-based owned-buffer
//! operations are driver-specific and live in the driver crates.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::reactor::Reactor;

/// Which readiness a socket waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Readable (or a pending connection, or the peer closed).
    Read,
    /// Writable (or a connect finished).
    Write,
}

/// The kernel technology behind a core's [`IoDriver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// io_uring (the default).
    Uring,
    /// epoll (fallback where io_uring is unavailable or disabled).
    Epoll,
}

impl DriverKind {
    /// The name used in configuration (`"uring"`, `"epoll"`).
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Uring => "uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many I/O events a driver processes per poll: the core's side of
/// tokio's `Builder::max_io_events_per_tick` and
/// `max_io_events_per_busy_tick`. Events left over stay with the kernel
/// (the epoll ready list, the io_uring completion queue) for the next
/// poll; a core does not sleep while any are left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Events per poll that may wait: the core sleeps in the driver
    /// ([`Reactor::park`]) because it has nothing else to do.
    pub per_tick: usize,
    /// Events per poll that does not wait ([`Reactor::poll`]): the core
    /// still has tasks to run, and every event may wake one more. A small
    /// batch here bounds how much work one poll queues in front of them.
    pub per_busy_tick: usize,
}

/// Identifies an fd registered with a core's [`IoDriver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub usize);

/// Readiness services of a kernel I/O driver.
///
/// Contract, for each registered fd and direction: after `poll_ready`
/// returned `Pending`, the driver wakes the task (the most recent waker
/// given for that direction) once the fd is, or may be, ready.
/// `clear_ready` tells the driver the socket saw `WouldBlock`, so readiness
/// it cached is stale. Spurious wake-ups are allowed; lost ones are not.
pub trait IoDriver: Reactor {
    /// Which technology this is.
    fn kind(&self) -> DriverKind;

    /// Starts tracking `fd` (a non-blocking socket or pipe).
    fn register(&mut self, fd: RawFd) -> io::Result<Token>;

    /// Stops tracking the fd of `token`; pending wakers are dropped. Must be
    /// called before the fd is closed.
    fn deregister(&mut self, token: Token);

    /// `Ready` when the fd is (believed) ready for `dir`; otherwise stores
    /// the waker and arranges to be told by the kernel.
    fn poll_ready(
        &mut self,
        token: Token,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>>;

    /// The driver's [`EventLimits`] (each driver has its own default).
    fn event_limits(&self) -> EventLimits;

    /// Sets how many events one poll processes (each at least 1: a 0 is
    /// taken as 1). A driver may cap a limit where its buffer ends (epoll:
    /// 65536 events per `epoll_wait`).
    fn set_event_limits(&mut self, limits: EventLimits);

    /// Forgets cached readiness for `dir`. Only valid right after the
    /// socket's syscall returned `WouldBlock`: readiness is one flag per
    /// direction, so clearing it after a short read could forget an EOF or
    /// error event the driver already consumed.
    fn clear_ready(&mut self, token: Token, dir: Direction);
}

/// Registers `driver` as the current core's kernel I/O driver (and as a
/// reactor polled by the core).
///
/// # Errors
/// Outside a runtime, or when the core already has an I/O driver or a
/// parking reactor.
pub fn install<D: IoDriver>(driver: Rc<RefCell<D>>) -> io::Result<()> {
    crate::context::with_core(|core| core.install_io_driver(driver)).unwrap_or_else(|| {
        Err(io::Error::other(
            "driver::install called outside an insane runtime",
        ))
    })
}

/// Runs `f` with the current core's I/O driver.
///
/// The driver stays borrowed while `f` runs; a nested call (e.g. from a
/// destructor run inside the driver's poll) gets an error, not a panic.
///
/// # Errors
/// Outside a runtime, or on a core without an I/O driver; the error says
/// which.
pub fn with_current<R>(f: impl FnOnce(&mut dyn IoDriver) -> R) -> io::Result<R> {
    let driver = crate::context::with_core(|core| core.io_driver())
        .ok_or_else(|| {
            io::Error::other("insane sockets must be used from inside an insane runtime")
        })?
        .ok_or_else(|| {
            io::Error::other(
                "this insane core has no I/O driver (the runtime was built without one)",
            )
        })?;
    let mut guard = driver.try_borrow_mut().map_err(|_| {
        io::Error::other(
            "the I/O driver is busy: a socket was used from inside the driver's own poll",
        )
    })?;
    Ok(f(&mut *guard))
}

/// The kind and per-core identity of the current core's I/O driver, if any:
/// sockets remember it to notice when they are used on another core.
pub fn current() -> Option<(DriverKind, u64)> {
    crate::context::with_core(|core| {
        core.io_driver()
            .map(|d| (d.borrow().kind(), core.shared.uid))
    })
    .flatten()
}
